// Password verification against a verifier file in PgBouncer's auth_file
// format, with PostgreSQL's rules for which stored form each method accepts.
//
// Format (PgBouncer docs, "Authentication file format"; src/loader.c
// load_auth_file): one entry per line, `"user" "password-or-secret"`, a doubled
// `""` inside quotes standing for one `"`; PgBouncer ignores the rest of the
// line. Differences, all towards refusing a file rather than guessing:
// - `#` starts a comment as well as `;` (PgBouncer's loader knows only `;`);
// - only blanks may separate the two strings (PgBouncer skips anything up to
//   the next quote, newlines included);
// - empty user names, empty passwords and duplicate users are errors;
// - a value that starts like a secret (`md5`, `SCRAM-`, any case) must be a
//   well-formed one: it is never taken for a plain-text password.
//
// Verification (PostgreSQL 18, 20.5 "Password Authentication"; auth.c
// CheckPWChallengeAuth, crypt.c plain_crypt_verify):
// - `scram-sha-256` needs a SCRAM secret: an MD5 hash can never pass;
// - `md5` does MD5 with an MD5 hash and SCRAM with a SCRAM secret;
// - `password` checks the cleartext against either.
// A plain-text password (PgBouncer files only) passes all three: the gateway
// receives the cleartext over HTTP.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import type { MethodName } from "../hba/rule.ts";

export type PasswordMethod = Extract<MethodName, "password" | "md5" | "scram-sha-256">;

export type StoredSecret =
  | { readonly kind: "plain"; readonly password: string }
  /** `md5` followed by 32 lowercase hex digits: "md5" + md5(password + user). */
  | { readonly kind: "md5"; readonly hash: string }
  | {
      readonly kind: "scram-sha-256";
      readonly iterations: number;
      readonly salt: Uint8Array;
      readonly storedKey: Uint8Array;
      readonly serverKey: Uint8Array;
    };

export interface VerifierFileError {
  readonly file: string;
  readonly line: number;
  /** Names the user where known; never contains a password or secret. */
  readonly message: string;
}

/** A whole file: usable only when `errors` is empty (fail closed, like pg_hba.conf). */
export interface VerifierFile {
  readonly path: string;
  readonly entries: ReadonlyMap<string, StoredSecret>;
  readonly errors: readonly VerifierFileError[];
}

type Parsed<T> = T | { readonly error: string };

/** PostgreSQL's default scram_iterations, for the dummy verifier of a file without SCRAM secrets. */
const DEFAULT_ITERATIONS = 4096;
/** SCRAM_SHA_256_KEY_LEN */
const KEY_LEN = 32;
/** scram_iterations is an int GUC. */
const MAX_ITERATIONS = 2147483647;

/** The methods each stored form can satisfy; a Record so a new method must be placed here. */
const ACCEPTS: Readonly<Record<PasswordMethod, ReadonlySet<StoredSecret["kind"]>>> = {
  password: new Set(["plain", "md5", "scram-sha-256"]),
  md5: new Set(["plain", "md5", "scram-sha-256"]),
  "scram-sha-256": new Set(["plain", "scram-sha-256"]),
};

// ---------------------------------------------------------------- parsing

/** isspace() without the newline, which ends the line. */
function isBlank(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\r" || c === "\v" || c === "\f";
}

function skipBlanks(s: string, i: number): number {
  while (i < s.length && isBlank(s[i])) i++;
  return i;
}

/** A quoted string starting at s[start] === '"': its text and the index after the closing quote. */
function readQuoted(s: string, start: number): { text: string; end: number } | null {
  let text = "";
  let i = start + 1;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '"') {
      if (s[i + 1] !== '"') return { text, end: i + 1 };
      i++;
    }
    text += c;
    i++;
  }
  return null;
}

// Standard alphabet with padding, as PostgreSQL's pg_b64_decode requires.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(s: string): Uint8Array | null {
  // A copy: small Buffers share Node's pool, and a secret's .buffer must hold only itself.
  return BASE64.test(s) ? new Uint8Array(Buffer.from(s, "base64")) : null;
}

/** SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5803; auth-scram.c parse_scram_secret). */
function parseScram(value: string): Parsed<StoredSecret> {
  const m = /^SCRAM-SHA-256\$([^:$]*):([^$]*)\$([^:]*):(.*)$/s.exec(value);
  if (!m) return { error: "expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" };
  const [, iter = "", salt64 = "", stored64 = "", server64 = ""] = m;
  const iterations = /^[1-9][0-9]{0,9}$/.test(iter) ? Number(iter) : NaN;
  if (!(iterations <= MAX_ITERATIONS)) return { error: "the iteration count must be an integer from 1 to 2147483647" };
  const salt = decodeBase64(salt64);
  if (!salt || salt.length === 0) return { error: "the salt must be non-empty base64" };
  const storedKey = decodeBase64(stored64);
  if (storedKey?.length !== KEY_LEN) return { error: "StoredKey must be 32 bytes in base64" };
  const serverKey = decodeBase64(server64);
  if (serverKey?.length !== KEY_LEN) return { error: "ServerKey must be 32 bytes in base64" };
  return Object.freeze({ kind: "scram-sha-256", iterations, salt, storedKey, serverKey });
}

/** The second field: a secret when it looks like one (and then it must be well-formed), else plain text. */
function classify(user: string, value: string): Parsed<StoredSecret> {
  if (/^scram-/i.test(value)) {
    const scram = parseScram(value);
    return "error" in scram ? { error: `invalid SCRAM secret for user "${user}": ${scram.error}` } : scram;
  }
  if (/^md5/i.test(value)) {
    if (/^md5[0-9a-f]{32}$/.test(value)) return Object.freeze({ kind: "md5", hash: value });
    return {
      error: `invalid MD5 hash for user "${user}": expected "md5" and 32 lowercase hexadecimal digits (35 characters), found ${value.length} characters`,
    };
  }
  return Object.freeze({ kind: "plain", password: value });
}

/** One line: null for blank lines and comments. */
function parseLine(raw: string): Parsed<{ user: string; secret: StoredSecret }> | null {
  let i = skipBlanks(raw, 0);
  if (i === raw.length || raw[i] === ";" || raw[i] === "#") return null;
  // User and role names and passwords are C strings in PostgreSQL and PgBouncer.
  if (raw.includes("\0")) return { error: "line contains a NUL byte" };
  if (raw[i] !== '"') return { error: "expected a double-quoted user name at the start of the line" };
  const user = readQuoted(raw, i);
  if (!user) return { error: "unterminated quoted user name" };
  if (user.text === "") return { error: "empty user name" };
  i = skipBlanks(raw, user.end);
  if (i === raw.length) return { error: `missing password for user "${user.text}"` };
  // A quote right after the name would have been read as a doubled quote, so a gap is guaranteed here.
  if (raw[i] !== '"') return { error: `expected blanks and a double-quoted password after user "${user.text}"` };
  const password = readQuoted(raw, i);
  if (!password) return { error: `unterminated quoted password for user "${user.text}"` };
  // PgBouncer would store it, but nobody could log in with it: say so rather than keep a dead entry.
  if (password.text === "") return { error: `empty password for user "${user.text}"` };
  // Anything after the second string is ignored, as PgBouncer does.
  const secret = classify(user.text, password.text);
  return "error" in secret ? secret : { user: user.text, secret };
}

/** ReadonlyMap is only a type; this view leaves no way to change the parsed entries. */
class FrozenMap<K, V> implements ReadonlyMap<K, V> {
  readonly #map: Map<K, V>;
  constructor(map: Map<K, V>) {
    this.#map = map;
    Object.freeze(this);
  }
  get size(): number {
    return this.#map.size;
  }
  get(key: K): V | undefined {
    return this.#map.get(key);
  }
  has(key: K): boolean {
    return this.#map.has(key);
  }
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    this.#map.forEach((v, k) => fn.call(thisArg, v, k, this));
  }
  entries() {
    return this.#map.entries();
  }
  keys() {
    return this.#map.keys();
  }
  values() {
    return this.#map.values();
  }
  [Symbol.iterator]() {
    return this.#map[Symbol.iterator]();
  }
}

type ScramSecret = Extract<StoredSecret, { kind: "scram-sha-256" }>;

/** The verifier unknown users are checked against, per file (see verifyPassword). */
const dummies = new WeakMap<VerifierFile, ScramSecret>();

/**
 * A dummy SCRAM secret that no password matches, with the file's most common
 * iteration count so that an unknown user costs what a real one does
 * (PostgreSQL's mock authentication uses the configured scram_iterations).
 */
function dummyFor(file: VerifierFile): ScramSecret {
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
    salt: new Uint8Array(randomBytes(16)),
    storedKey: new Uint8Array(randomBytes(KEY_LEN)),
    serverKey: new Uint8Array(randomBytes(KEY_LEN)),
  });
  dummies.set(file, dummy);
  return dummy;
}

/** Parse a verifier file's text. `path` is only for error messages. */
export function parseVerifierFile(path: string, text: string): VerifierFile {
  const entries = new Map<string, StoredSecret>();
  const firstLine = new Map<string, number>();
  const errors: VerifierFileError[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    const parsed = parseLine(raw);
    if (parsed === null) return;
    if ("error" in parsed) {
      errors.push(Object.freeze({ file: path, line, message: parsed.error }));
      return;
    }
    const first = firstLine.get(parsed.user);
    if (first !== undefined) {
      errors.push(Object.freeze({ file: path, line, message: `duplicate entry for user "${parsed.user}" (first at line ${first})` }));
      return;
    }
    firstLine.set(parsed.user, line);
    entries.set(parsed.user, parsed.secret);
  });
  const file: VerifierFile = Object.freeze({ path, entries: new FrozenMap(entries), errors: Object.freeze(errors) });
  dummyFor(file);
  return file;
}

// ---------------------------------------------------------------- verification

const pbkdf2Async = promisify(pbkdf2);

/** Constant-time equality; unequal lengths are simply unequal (the lengths here are public). */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// RFC 4013 (SASLprep) step 1: RFC 3454 table C.1.2 maps to a space, table B.1 to nothing.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;

/**
 * The strings whose UTF-8 bytes PostgreSQL may have fed to SCRAM for this
 * password. PostgreSQL (common/saslprep.c) leaves ASCII alone; otherwise it
 * maps (above) and NFKC-normalizes, and if the result contains a prohibited or
 * unassigned-in-Unicode-3.2 character or breaks the bidi rule, it uses the
 * raw bytes instead. Telling those apart needs Unicode 3.2 tables (~800
 * ranges), so both are tried: the raw string and the mapped, normalized one.
 * Consequence: when PostgreSQL stored the raw bytes of a password that
 * SASLprep refuses, a variant that only maps to those bytes (a no-break space
 * for a space, an added soft hyphen) is accepted here but not by PostgreSQL.
 */
function scramCandidates(password: string): string[] {
  if (/^[\x00-\x7f]*$/.test(password)) return [password];
  const prepared = password.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "").normalize("NFKC");
  return prepared === password ? [password] : [password, prepared];
}

/** RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key"). */
async function scramMatches(secret: ScramSecret, password: string): Promise<boolean> {
  let ok = false;
  // Every candidate is computed: the time depends on the input's shape, never on which one matched.
  for (const candidate of scramCandidates(password)) {
    const salted = await pbkdf2Async(Buffer.from(candidate, "utf8"), secret.salt, secret.iterations, KEY_LEN, "sha256");
    const clientKey = createHmac("sha256", salted).update("Client Key").digest();
    const storedKey = createHash("sha256").update(clientKey).digest();
    const serverKey = createHmac("sha256", salted).update("Server Key").digest();
    // A SCRAM exchange checks StoredKey, the `password` method ServerKey (scram_verify_plain_password): require both.
    const stored = constantTimeEqual(storedKey, secret.storedKey);
    const server = constantTimeEqual(serverKey, secret.serverKey);
    ok = (stored && server) || ok;
  }
  return ok;
}

/** No SASLprep for MD5: PostgreSQL hashes the password's bytes as sent. */
function md5Matches(hash: string, user: string, password: string): boolean {
  const computed = "md5" + createHash("md5").update(password + user, "utf8").digest("hex");
  return constantTimeEqual(Buffer.from(computed, "latin1"), Buffer.from(hash, "latin1"));
}

/** Compared as SHA-256 digests so that the stored password's length does not show either. */
function plainMatches(stored: string, password: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
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
