// The verified-caller cache's MAC on Node: HMAC-SHA-256 (RFC 2104) over
// node:crypto's one-shot hash(). It runs on every cached password, LDAP and
// bearer request, and createHmac() builds an Hmac object and looks SHA-256 up
// in OpenSSL's provider tables at each call, which under load cost several
// times the hashing itself; hash() does neither. createHmac() where hash()
// is missing (Node before 20.12).
import * as nodeCrypto from "node:crypto";
import type { KeyedMac } from "../auth/verified-callers.ts";

const BLOCK = 64;

/** HMAC-SHA-256 under a fresh random key (a given one only in tests). */
export function nodeMac(key: Uint8Array = nodeCrypto.randomBytes(32)): KeyedMac {
  const hash = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: "buffer" | "hex") => Buffer | string }).hash;
  if (typeof hash !== "function") return (message) => nodeCrypto.createHmac("sha256", key).update(message, "utf8").digest("hex");
  // The key padded to a block (hashed first when longer), XORed with ipad and opad once.
  const padded = new Uint8Array(BLOCK);
  padded.set(key.length > BLOCK ? (hash("sha256", key, "buffer") as Buffer) : key);
  const inner = Buffer.from(padded.map((b) => b ^ 0x36));
  const outer = Buffer.alloc(BLOCK + 32);
  outer.set(padded.map((b) => b ^ 0x5c));
  return (message) => {
    const text = Buffer.from(message, "utf8");
    outer.set(hash("sha256", Buffer.concat([inner, text], BLOCK + text.length), "buffer") as Buffer, BLOCK);
    return hash("sha256", outer, "hex") as string;
  };
}
