// Whether a password is a user's, against a parsed verifier file, with
// PostgreSQL's rules for which stored form each method accepts (PostgreSQL 18,
// 20.5 "Password Authentication"; auth.c CheckPWChallengeAuth, crypt.c
// plain_crypt_verify):
// - `scram-sha-256` needs a SCRAM secret: an MD5 hash can never pass;
// - `md5` does MD5 with an MD5 hash and SCRAM with a SCRAM secret;
// - `password` checks the cleartext against either.
// A plain-text password (PgBouncer files only) passes all three: the gateway
// receives the cleartext over HTTP.
// Web Crypto and @noble/hashes only, so that every runtime can check a password.
import { hmac } from "@noble/hashes/hmac.js";
import { md5 } from "@noble/hashes/legacy.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { saslprep } from "@mongodb-js/saslprep";
import type { MethodName } from "../hba/rule.ts";
import type { StoredSecret, VerifierFile } from "./verifier-file.ts";

export type PasswordMethod = Extract<MethodName, "password" | "md5" | "scram-sha-256">;

/** SCRAM_SHA_256_KEY_LEN */
export const KEY_LEN = 32;
/** PostgreSQL's default scram_iterations, for the dummy verifier of a file without SCRAM secrets. */
const DEFAULT_ITERATIONS = 4096;

/** The methods each stored form can satisfy; a Record so a new method must be placed here. */
const ACCEPTS: Readonly<Record<PasswordMethod, ReadonlySet<StoredSecret["kind"]>>> = {
  password: new Set(["plain", "md5", "scram-sha-256"]),
  md5: new Set(["plain", "md5", "scram-sha-256"]),
  "scram-sha-256": new Set(["plain", "scram-sha-256"]),
};

type ScramSecret = Extract<StoredSecret, { kind: "scram-sha-256" }>;

/** The verifier unknown users are checked against, per file (see verifyPassword). */
const dummies = new WeakMap<VerifierFile, ScramSecret>();

/**
 * A dummy SCRAM secret that no password matches, with the file's most common
 * iteration count so that an unknown user costs what a real one does
 * (PostgreSQL's mock authentication uses the configured scram_iterations).
 */
export function dummyFor(file: VerifierFile): ScramSecret {
  const known = dummies.get(file);
  if (known) return known;
  const counts = new Map<number, number>();
  for (const s of file.entries.values()) {
    if (s.kind === "scram-sha-256") counts.set(s.iterations, (counts.get(s.iterations) ?? 0) + 1);
  }
  let iterations = DEFAULT_ITERATIONS;
  let best = 0;
  for (const [n, count] of counts) if (count > best) [iterations, best] = [n, count];
  const dummy: ScramSecret = Object.freeze({
    kind: "scram-sha-256",
    iterations,
    salt: crypto.getRandomValues(new Uint8Array(16)),
    storedKey: crypto.getRandomValues(new Uint8Array(KEY_LEN)),
    serverKey: crypto.getRandomValues(new Uint8Array(KEY_LEN)),
  });
  dummies.set(file, dummy);
  return dummy;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Constant-time equality; unequal lengths are simply unequal (the lengths here are public). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Hi() of RFC 5802: PBKDF2-HMAC-SHA-256, native in every runtime's Web Crypto (and off the event loop). */
export async function saltedPassword(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", utf8(password), "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, KEY_LEN * 8));
}

/**
 * The string whose UTF-8 bytes PostgreSQL fed to SCRAM for this password
 * (common/saslprep.c): pure ASCII as it is; otherwise SASLprep (RFC 4013:
 * mapping, NFKC, no prohibited or unassigned-in-Unicode-3.2 characters, the
 * bidi rule), or, when SASLprep refuses the string, its raw bytes. One
 * candidate, as PostgreSQL decides: never a variant it would refuse.
 */
export function scramInput(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  try {
    return saslprep(password, { allowUnassigned: false });
  } catch {
    return password;
  }
}

/** RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key"). */
async function scramMatches(secret: ScramSecret, password: string): Promise<boolean> {
  const salted = await saltedPassword(scramInput(password), secret.salt, secret.iterations);
  const storedKey = sha256(hmac(sha256, salted, utf8("Client Key")));
  const serverKey = hmac(sha256, salted, utf8("Server Key"));
  // A SCRAM exchange checks StoredKey, the `password` method ServerKey (scram_verify_plain_password): require both.
  const stored = constantTimeEqual(storedKey, secret.storedKey);
  const server = constantTimeEqual(serverKey, secret.serverKey);
  return stored && server;
}

/** No SASLprep for MD5: PostgreSQL hashes the password's bytes as sent. */
function md5Matches(hash: string, user: string, password: string): boolean {
  const computed = "md5" + bytesToHex(md5(utf8(password + user)));
  return constantTimeEqual(utf8(computed), utf8(hash));
}

/** Compared as SHA-256 digests so that the stored password's length does not show either. */
function plainMatches(stored: string, password: string): boolean {
  const digest = (s: string) => sha256(utf8(s));
  return constantTimeEqual(digest(stored), digest(password));
}

/**
 * Whether `password` is `user`'s password under `method`. An unknown user, or
 * one whose stored form `method` cannot use, costs the same SCRAM work against
 * a dummy secret, so refusals take about equally long; MD5 and plain-text
 * checks run alongside that work, never instead of it.
 */
export async function verifyPassword(file: VerifierFile, method: PasswordMethod, user: string, password: string): Promise<boolean> {
  if (file.errors.length > 0) throw new Error(`verifier file ${file.path} has errors and must not be used`);
  // PostgreSQL refuses an empty password before any check (auth.c: recv_password_packet).
  if (password === "") return false;
  const stored = file.entries.get(user);
  const usable = stored !== undefined && ACCEPTS[method].has(stored.kind) ? stored : undefined;
  const scramOk = await scramMatches(usable?.kind === "scram-sha-256" ? usable : dummyFor(file), password);
  if (usable === undefined) return false;
  switch (usable.kind) {
    case "plain":
      return plainMatches(usable.password, password);
    case "md5":
      return md5Matches(usable.hash, user, password);
    case "scram-sha-256":
      return scramOk;
    default: {
      const unreachable: never = usable;
      throw unreachable;
    }
  }
}

/**
 * Why verifyPassword refused `password` for `user`, for the log (no secret in it). Called only
 * after the refusal, so the constant-time check above is unaffected.
 */
export function whyRefused(file: VerifierFile, method: PasswordMethod, user: string, password: string): string {
  if (password === "") return "an empty password is refused before any check";
  const stored = file.entries.get(user);
  if (stored === undefined) return `no entry for "${user}" in the verifier file ${file.path}`;
  if (!ACCEPTS[method].has(stored.kind)) {
    return `the verifier file holds ${stored.kind === "md5" ? "an MD5 hash" : `a ${stored.kind} secret`} for "${user}", which ${method} never accepts (store a SCRAM secret: ALTER ROLE … PASSWORD with password_encryption = scram-sha-256)`;
  }
  return `the password does not match the verifier file's entry for "${user}"`;
}
