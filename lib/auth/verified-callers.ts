// Callers verified recently, so a stream of requests does not pay a login (or
// a SCRAM derivation) each. Entries are keyed by a MAC of the credentials
// under a per-process random key: the password itself is never stored, and
// the key cannot be recomputed outside this process. Failures are never
// remembered; a configuration reload clears everything.
//
// The MAC is computed synchronously: it runs on every cached password, LDAP
// and bearer request, and WebCrypto's sign() is asynchronous, which in Node
// means a hop to the thread pool and back (about 25 µs of CPU). By default it
// is HMAC-SHA-256 from @noble/hashes in JavaScript (about 12 µs); the Node
// entry point passes node:crypto's BLAKE2b (lib/node/node-mac.ts, about
// 1.5 µs), which lib/ cannot import and stay runtime-neutral.
import { LRUCache } from "lru-cache";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const encoder = new TextEncoder();

/** A MAC of a message, hex, under a key of its own that never leaves it. */
export type KeyedMac = (message: string) => string;

/** HMAC-SHA-256 in JavaScript under a fresh random key (a given one only in tests): any runtime. */
export function javascriptMac(key: Uint8Array = crypto.getRandomValues(new Uint8Array(32))): KeyedMac {
  // Keyed once; cloned for each message.
  const keyed = hmac.create(sha256, key);
  return (message) => bytesToHex(keyed.clone().update(encoder.encode(message)).digest());
}

/** String.prototype.isWellFormed (ES2024; Node 20 has it): no lone surrogate. O(1) for V8's one-byte strings, which a token is. */
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

export interface VerifiedCallersOptions {
  /** How long a verification is trusted, in milliseconds; 0 disables the cache. */
  readonly ttlMs: number;
  /** Bound on remembered callers; the oldest go first. */
  readonly maxEntries: number;
  readonly now?: () => number;
  /** The MAC that keys entries; default javascriptMac(). */
  readonly mac?: KeyedMac;
}

export class VerifiedCallers {
  /** What each verification found (`true` where it found nothing to keep). */
  private readonly entries: LRUCache<string, object | true> | undefined;
  /** Counts clear()s: a verification that began before a reload must not be remembered after it. */
  private generation = 0;
  private readonly mac: KeyedMac;

  constructor(options: VerifiedCallersOptions) {
    this.mac = options.mac ?? javascriptMac();
    // found() (peek) leaves an entry's place alone, so the first to go is the least recently verified.
    this.entries =
      options.ttlMs > 0 && options.maxEntries > 0
        ? new LRUCache<string, object | true>({ max: options.maxEntries, ttl: options.ttlMs, ttlResolution: 0, perf: { now: options.now ?? Date.now } })
        : undefined;
  }

  /**
   * The cache key for one verification: which rule and target (`context`),
   * which credential (`secret`). The MAC's message is the context as a JSON
   * array, then the secret: the array's closing bracket ends it wherever
   * the secret begins, so no two (context, secret) pairs share a message.
   * The secret goes in as it is, not through JSON.stringify (about 1 µs of
   * a cached bearer request's 2.6, for a token's scan and copy), marked
   * "=", when it is well-formed UTF-16; one with a lone surrogate, which the
   * MAC's UTF-8 encoding would turn into U+FFFD like any other, goes in as
   * JSON (which writes a lone surrogate as its escape), marked "~".
   */
  keyFor(context: readonly string[], secret: string): string {
    return this.mac(JSON.stringify(context) + (isWellFormed(secret) ? "=" + secret : "~" + JSON.stringify(secret)));
  }

  has(key: string): boolean {
    return this.found(key) !== undefined;
  }

  /** What a remembered verification found (`true`: nothing to keep), or undefined when none is remembered; its place in line is left alone. */
  found(key: string): object | true | undefined {
    return this.entries?.peek(key);
  }

  /** Taken when a verification starts, and handed to remember(). */
  get epoch(): number {
    return this.generation;
  }

  /**
   * Remember a success that began at `epoch`, for the TTL or for `forMs` when
   * that is shorter (a token's remaining life). Not when the cache was cleared
   * since (a reload may have changed the line it was checked under).
   * `found`: what the verification established (a token's verified claims),
   * handed back by found() so that a request it covers need not work it out
   * again; never a credential.
   */
  remember(key: string, epoch: number, forMs?: number, found: object | true = true): void {
    if (epoch !== this.generation) return;
    if (forMs === undefined) this.entries?.set(key, found);
    else if (forMs > 0) this.entries?.set(key, found, { ttl: Math.min(forMs, this.entries.ttl) });
  }

  clear(): void {
    this.generation++;
    this.entries?.clear();
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }
}
