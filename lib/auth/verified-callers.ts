// Callers verified recently, so a stream of requests does not pay a login (or
// a SCRAM derivation) each. Entries are keyed by an HMAC of the credentials
// under a per-process random key: the password itself is never stored, and
// the key cannot be recomputed outside this process. Failures are never
// remembered; a configuration reload clears everything.
import type { webcrypto } from "node:crypto";

export interface VerifiedCallersOptions {
  /** How long a verification is trusted, in milliseconds; 0 disables the cache. */
  readonly ttlMs: number;
  /** Bound on remembered callers; the oldest go first. */
  readonly maxEntries: number;
  readonly now?: () => number;
}

const encoder = new TextEncoder();

export class VerifiedCallers {
  private readonly entries = new Map<string, number>();
  private readonly key: Promise<webcrypto.CryptoKey>;
  private readonly now: () => number;

  constructor(private readonly options: VerifiedCallersOptions) {
    this.now = options.now ?? Date.now;
    this.key = crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]) as Promise<webcrypto.CryptoKey>;
  }

  /** The cache key for one verification: which rule, which target, which credentials. */
  async keyFor(parts: readonly string[]): Promise<string> {
    const mac = await crypto.subtle.sign("HMAC", await this.key, encoder.encode(JSON.stringify(parts)));
    return Buffer.from(mac).toString("base64");
  }

  has(key: string): boolean {
    const expires = this.entries.get(key);
    if (expires === undefined) return false;
    if (expires <= this.now()) {
      this.entries.delete(key);
      return false;
    }
    return true;
  }

  remember(key: string): void {
    if (this.options.ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, this.now() + this.options.ttlMs);
    // Map iteration is insertion order: the first entries are the oldest.
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
