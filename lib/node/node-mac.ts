// The verified-caller cache's MAC on Node: BLAKE2b-512 over a secret prefix
// (the key, as hex text) and the message, in one call of node:crypto's
// one-shot hash(). It runs on every cached password, LDAP and bearer request.
// A secret prefix is a sound MAC for BLAKE2, which cannot be length-extended
// (for SHA-256 it is not, hence HMAC's two passes), and one call over the
// string as it is costs about half of HMAC-SHA-256's two calls and the
// buffers built for them (1.4 against 2.7 µs for a bearer token's key, on
// the benchmark's machine). Outputs never leave the process: they are cache
// keys. Where hash() or BLAKE2b is missing (Node before 20.12, an OpenSSL
// without it), HMAC-SHA-256 through createHmac().
import * as nodeCrypto from "node:crypto";
import type { KeyedMac } from "../auth/verified-callers.ts";

type OneShotHash = (algorithm: string, data: string, encoding: "hex") => string;

const ALGORITHM = "blake2b512";

/**
 * The MAC under a fresh random key (a given one only in tests). `hash`:
 * node:crypto's (null where Node has none, or where a test takes it away).
 */
export function nodeMac(key: Uint8Array = nodeCrypto.randomBytes(32), hash: OneShotHash | null = (nodeCrypto as { hash?: OneShotHash }).hash ?? null): KeyedMac {
  // Copied now, as createHmac() would read it: a caller's later change to its buffer changes nothing.
  const copy = Buffer.from(key);
  if (hash !== null && offers(hash)) {
    const prefix = copy.toString("hex");
    return (message) => hash(ALGORITHM, prefix + message, "hex");
  }
  return (message) => nodeCrypto.createHmac("sha256", copy).update(message, "utf8").digest("hex");
}

function offers(hash: OneShotHash): boolean {
  try {
    hash(ALGORITHM, "", "hex");
    return true;
  } catch {
    return false;
  }
}
