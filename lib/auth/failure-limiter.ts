// Brute-force brake: failed verifications for the same (client address,
// identity) are answered ever more slowly, then refused outright for a
// cooling-off period (08004, HTTP 429) without touching the database or LDAP.
// A success clears the record; other identities and other addresses are
// unaffected. The identity is a failure key (failure-key.ts): the name as the
// verifier compares it, so "TEST1" counts against test1 under LDAP.
import { gatewayError, type GatewayError } from "../errors.ts";

export interface FailureLimiterOptions {
  /** Failures before answers slow down. */
  readonly slowAfter: number;
  /** Failures (within the window) before the pair is locked out. */
  readonly lockAfter: number;
  /** Failures older than this are forgotten. */
  readonly windowMs: number;
  /** How long a locked-out pair is refused. */
  readonly lockMs: number;
  /** Extra delay per failure past slowAfter, and its cap. */
  readonly delayStepMs: number;
  readonly maxDelayMs: number;
  /** Bound on remembered pairs (oldest out first). */
  readonly maxEntries: number;
  readonly now?: () => number;
}

interface Record {
  failures: number;
  firstAt: number;
  lockedUntil: number;
}

/** SQLSTATE sqlserver_rejected_establishment_of_sqlconnection: a refusal that is not about the credentials. */
export const LOCKED_OUT = "08004";

export class FailureLimiter {
  private readonly records = new Map<string, Record>();
  private readonly now: () => number;
  constructor(private readonly options: FailureLimiterOptions) {
    this.now = options.now ?? Date.now;
  }

  private key(address: string, identity: string): string {
    return JSON.stringify([address, identity]);
  }

  /** Refuse at once when the pair is cooling off; `user` is the name the caller sent, for the message. */
  check(address: string, identity: string, user: string = identity): GatewayError | undefined {
    if (this.records.size === 0) return undefined;
    const r = this.records.get(this.key(address, identity));
    const now = this.now();
    if (!r || r.lockedUntil <= now) return undefined;
    const seconds = Math.ceil((r.lockedUntil - now) / 1000);
    return gatewayError(LOCKED_OUT, `too many failed authentication attempts for user "${user}"`, {
      hint: `Try again in ${seconds} s.`,
    });
  }

  /** Record a failure; resolves after the delay its answer should carry. */
  async failed(address: string, identity: string): Promise<void> {
    const key = this.key(address, identity);
    const now = this.now();
    let r = this.records.get(key);
    if (!r || now - r.firstAt > this.options.windowMs) r = { failures: 0, firstAt: now, lockedUntil: 0 };
    this.records.delete(key);
    this.records.set(key, r);
    r.failures += 1;
    if (r.failures >= this.options.lockAfter) r.lockedUntil = now + this.options.lockMs;
    while (this.records.size > this.options.maxEntries) this.records.delete(this.records.keys().next().value as string);
    const over = r.failures - this.options.slowAfter;
    if (over > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(this.options.maxDelayMs, over * this.options.delayStepMs)));
  }

  succeeded(address: string, identity: string): void {
    if (this.records.size === 0) return;
    this.records.delete(this.key(address, identity));
  }
}
