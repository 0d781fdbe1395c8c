// Brute-force brake: failed verifications for the same (client address,
// identity) are answered ever more slowly, then refused outright for a
// cooling-off period (08004, HTTP 429) without touching the database or LDAP.
// A success clears the record; other identities and other addresses are
// unaffected. The identity is a failure key (failure-key.ts): the name as the
// verifier compares it, so "TEST1" counts against test1 under LDAP.
//
// Parallel guesses do not overtake the count: admit() lets no more
// verifications of a pair run at once than failures are left before its lock,
// and the rest wait for a turn (a legitimate burst waits; it is not refused).
//
// Memory is bounded, and a flood never unlocks anything:
// - counters (failures not yet at the lock) are bounded by maxEntries; a flood
//   evicts the least recently failed first;
// - locks live apart from counters, so no number of new names evicts one;
//   they are bounded by maxLocks and leave only when they expire;
// - when the lock table is full of live locks, a new lock goes into a fixed
//   table of overflowSlots buckets picked by a keyed hash of (address,
//   identity). A bucket holds the latest expiry written to it, so a pair that
//   shares it with a locked one is refused too: a full table locks more
//   pairs than asked (fail closed), never fewer, and never releases early.
import { gatewayError, SQLSTATE, type GatewayError } from "../errors.ts";
import { LRUCache } from "lru-cache";
import { javascriptMac, type KeyedMac } from "./verified-callers.ts";

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
  /** Bound on failure counters (least recently failed out first). */
  readonly maxEntries: number;
  /** Bound on exactly remembered locks; past it, locks go to the overflow buckets. Default 10,000. */
  readonly maxLocks?: number;
  /** Buckets for locks that did not fit (a Float64Array, made when first needed). Default 65,536. */
  readonly overflowSlots?: number;
  readonly now?: () => number;
  /** Keys the overflow buckets; default: HMAC under a random per-process key. */
  readonly mac?: KeyedMac;
}

interface Counter {
  failures: number;
  firstAt: number;
}

/** Verifications of one pair under way, and the requests waiting for a turn. */
interface Flight {
  running: number;
  waiting: (() => void)[];
}

interface Lock {
  until: number;
  /** The first failure of the run that led here: a failure within the window after expiry locks again. */
  firstAt: number;
}

/** SQLSTATE sqlserver_rejected_establishment_of_sqlconnection: a refusal that is not about the credentials. */
export const LOCKED_OUT = SQLSTATE.sqlserverRejectedEstablishment;

/** The refusal of a pair that is cooling off for `ms` more milliseconds. */
export const lockedOut = (user: string, ms: number): GatewayError =>
  gatewayError(LOCKED_OUT, `too many failed authentication attempts for user "${user}"`, { hint: `Try again in ${Math.ceil(ms / 1000)} s.` });

export class FailureLimiter {
  /** Least recently failed out first: recency is set by failures only (reads peek). */
  private readonly counters: LRUCache<string, Counter>;
  /** In insertion order, which is expiry order: every lock lasts lockMs from when it was (re)set. */
  private readonly locks = new Map<string, Lock>();
  private overflow: Float64Array | undefined;
  private readonly maxLocks: number;
  private readonly overflowSlots: number;
  /** The latest expiry in any bucket: before it, checks consult the buckets. */
  private overflowUntil = 0;
  private readonly flights = new Map<string, Flight>();
  private readonly now: () => number;
  private readonly mac: KeyedMac;

  constructor(private readonly options: FailureLimiterOptions) {
    this.now = options.now ?? Date.now;
    this.mac = options.mac ?? javascriptMac();
    this.maxLocks = options.maxLocks ?? 10_000;
    this.overflowSlots = Math.max(1, options.overflowSlots ?? 65_536);
    this.counters = new LRUCache({ max: Math.max(1, options.maxEntries) });
  }

  private key(address: string, identity: string): string {
    return JSON.stringify([address, identity]);
  }

  private bucket(key: string): number {
    return parseInt(this.mac(key).slice(0, 8), 16) % this.overflowSlots;
  }

  /** Remaining lock time for a pair, 0 when it may be verified. */
  private lockedFor(key: string, now: number): number {
    const lock = this.locks.get(key);
    let until = lock ? lock.until : 0;
    if (this.overflow && now < this.overflowUntil) until = Math.max(until, this.overflow[this.bucket(key)]!);
    return Math.max(0, until - now);
  }

  /** Refuse at once when the pair is cooling off; `user` is the name the caller sent, for the message. */
  check(address: string, identity: string, user: string = identity): GatewayError | undefined {
    if (this.locks.size === 0 && this.overflowUntil === 0) return undefined;
    const ms = this.lockedFor(this.key(address, identity), this.now());
    if (ms === 0) return undefined;
    return lockedOut(user, ms);
  }

  /**
   * Wait for a turn to verify the pair: no more verifications of it run at
   * once than failures are left before the lock (at least one), so parallel
   * guesses cannot overtake the count. Throws 08004 when the pair is locked
   * (also after waiting). Call the returned function when the verification
   * and its failed()/succeeded() are done.
   */
  async admit(address: string, identity: string, user: string = identity): Promise<() => void> {
    const key = this.key(address, identity);
    for (;;) {
      const locked = this.check(address, identity, user);
      if (locked) {
        const idle = this.flights.get(key);
        if (idle && idle.running === 0 && idle.waiting.length === 0) this.flights.delete(key);
        throw locked;
      }
      let flight = this.flights.get(key);
      if (!flight) this.flights.set(key, (flight = { running: 0, waiting: [] }));
      if (flight.running < Math.max(1, this.options.lockAfter - this.failuresOf(key))) {
        flight.running += 1;
        let done = false;
        return () => {
          if (done) return;
          done = true;
          this.release(key, flight);
        };
      }
      // Someone is running (running >= 1 here), and will wake us when done.
      await new Promise<void>((resolve) => flight.waiting.push(resolve));
    }
  }

  private failuresOf(key: string): number {
    const c = this.counters.peek(key);
    return c && this.now() - c.firstAt <= this.options.windowMs ? c.failures : 0;
  }

  private release(key: string, flight: Flight): void {
    flight.running -= 1;
    // Everyone waiting looks again (the count or the lock may have changed); the rest wait on.
    const waiting = flight.waiting.splice(0);
    if (flight.running === 0 && waiting.length === 0) this.flights.delete(key);
    for (const wake of waiting) wake();
  }

  /** Record a failure; resolves after the delay its answer should carry. */
  async failed(address: string, identity: string): Promise<void> {
    const key = this.key(address, identity);
    const now = this.now();
    this.dropExpiredLocks(now);
    const lock = this.locks.get(key);
    let failures: number;
    if (lock && (lock.until > now || now - lock.firstAt <= this.options.windowMs)) {
      // Failed while locked (it passed the check before the lock was set) or within the window after: locked again.
      failures = this.options.lockAfter;
      this.lock(key, lock.firstAt, now);
    } else {
      if (lock) this.locks.delete(key);
      let c = this.counters.peek(key);
      if (!c || now - c.firstAt > this.options.windowMs) c = { failures: 0, firstAt: now };
      c.failures += 1;
      failures = c.failures;
      if (failures >= this.options.lockAfter) {
        this.counters.delete(key);
        this.lock(key, c.firstAt, now);
      } else {
        // Most recently failed: the last to be evicted.
        this.counters.set(key, c);
      }
    }
    const over = failures - this.options.slowAfter;
    if (over > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(this.options.maxDelayMs, over * this.options.delayStepMs)));
  }

  private lock(key: string, firstAt: number, now: number): void {
    const until = now + this.options.lockMs;
    this.locks.delete(key);
    if (this.locks.size < this.maxLocks) {
      this.locks.set(key, { until, firstAt });
      return;
    }
    // Full of live locks: none may go, so this one goes to a bucket (see the top of the file).
    this.overflow ??= new Float64Array(this.overflowSlots);
    const b = this.bucket(key);
    this.overflow[b] = Math.max(this.overflow[b]!, until);
    this.overflowUntil = Math.max(this.overflowUntil, until);
  }

  /** Expired locks leave from the front (the oldest); a live one stops the sweep. */
  private dropExpiredLocks(now: number): void {
    for (const [key, lock] of this.locks) {
      if (lock.until > now) break;
      // Kept while a failure could still re-lock it, unless the room is needed.
      if (now - lock.firstAt <= this.options.windowMs && this.locks.size < this.maxLocks) break;
      this.locks.delete(key);
    }
    if (this.overflowUntil !== 0 && this.overflowUntil <= now) {
      this.overflow?.fill(0);
      this.overflowUntil = 0;
    }
  }

  succeeded(address: string, identity: string): void {
    if (this.counters.size === 0) return;
    this.counters.delete(this.key(address, identity));
  }

  /** What is held, for tests and diagnostics. */
  sizes(): { counters: number; locks: number; overflowActive: boolean; inFlight: number } {
    return { counters: this.counters.size, locks: this.locks.size, overflowActive: this.overflowUntil > this.now(), inFlight: this.flights.size };
  }
}
