// A verifier file in PgBouncer's auth_file format, parsed once into an
// immutable map of users to stored secrets.
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
// Checking a password against a parsed file: verify-password.ts.
import { dummyFor, KEY_LEN } from "./verify-password.ts";

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

/** scram_iterations is an int GUC. */
const MAX_ITERATIONS = 2147483647;

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
  // Made now, so the first unknown user does not pay for it.
  dummyFor(file);
  return file;
}
