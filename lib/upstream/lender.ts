// One (database, role) pool's connections, lent to one request at a time.
// Each connection is one server session of its own (pool-connection.ts), closed
// without its neighbours (a session that could not be reset, a lost socket); the
// count of connections is the count of sockets.
// Requests wait in arrival order; a caller identity at its bound waits while
// others behind it go first, so one end user cannot take a role's every
// connection. The total and per-role bounds belong to the ConnectionBudget;
// the Coordinator (pools.ts) makes room when they are full.
import type { PoolConnection } from "./pool-connection.ts";
import type { ConnectionBudget } from "./connection-budget.ts";
import { exhausted, type WaitingRoom } from "./waiting-room.ts";

export interface Connection {
  readonly link: PoolConnection;
  /** When it was opened: a connection older than the pool's lifetime is closed when let go of. */
  readonly openedAt: number;
  /** When its last request let go of it; undefined while it has never been used. */
  lastUsedAt: number | undefined;
}

export interface Coordinator {
  readonly budget: ConnectionBudget;
  readonly room: WaitingRoom;
  /** A connection closed, or a lender waits for a bound: look for room. */
  changed(): void;
  /** Connections a caller identity holds now, across every pool. */
  held(identity: string): number;
  /** A caller identity takes (1) or lets go of (-1) a connection. */
  hold(identity: string, delta: 1 | -1): void;
  /**
   * Whether a connection `lender` is letting go of should close instead, to
   * make room for someone who has waited longer elsewhere (another pool or
   * a verification login) than anyone waiting for `lender`.
   */
  owedElsewhere(lender: Lender): boolean;
}

export interface LenderLimits {
  /** Connections of this (database, role). */
  readonly max: number;
  /** Connections one caller identity may hold at once, across every pool of its role. */
  readonly perIdentity: number;
  /** A connection older than this is closed when its request lets go of it, never in the middle of one. */
  readonly maxLifetimeMs: number;
}

/**
 * How a waiting request can be given up on: its signal (the caller left, the
 * request's deadline passed), asked for only once the wait has lasted a
 * little (most waits are shorter), and the error to answer with then.
 */
export interface WaitWatch {
  readonly signal: () => AbortSignal;
  readonly cancelled: (signal: AbortSignal) => unknown;
}

/** A wait longer than this starts watching its request's signal. */
const WATCH_AFTER_MS = 20;

interface Waiter {
  readonly identity: string | undefined;
  readonly since: number;
  readonly resolve: (c: Connection) => void;
  readonly reject: (err: unknown) => void;
  timer?: ReturnType<typeof setTimeout>;
  watching?: ReturnType<typeof setTimeout>;
  stopWatching?: () => void;
}

export class Lender {
  /** Connections nobody uses, least recently used first. */
  private readonly idle: Connection[] = [];
  /** Connections counted for this pool: lent, idle, opening or closing. */
  private opened = 0;
  private lent = 0;
  private readonly waiting: Waiter[] = [];
  private ended = false;

  constructor(
    readonly role: string,
    private readonly limits: LenderLimits,
    private readonly open: () => PoolConnection,
    private readonly coordinator: Coordinator,
  ) {}

  /** Nothing open, lent or waited for: the pool can be forgotten. */
  get empty(): boolean {
    return this.opened === 0 && this.waiting.length === 0 && this.lent === 0;
  }

  /** When the longest waiter started waiting; undefined with none. */
  get waitingSince(): number | undefined {
    return this.waiting[0]?.since;
  }

  /** When the least recently used idle connection was let go of; undefined with none idle. */
  get idleSince(): number | undefined {
    return this.idle[0]?.lastUsedAt;
  }

  /** Waiters a new connection would serve now (identities at their bound are not counted). */
  get unserved(): number {
    let n = 0;
    for (const w of this.waiting) if (this.mayTake(w.identity)) n++;
    return Math.min(n, this.limits.max - this.opened);
  }

  /** A connection of this pool's for one request: at once when one is free, else after a wait (53300 when too long). */
  take(identity: string | undefined, watch?: WaitWatch): Connection | Promise<Connection> {
    if (this.ended) return Promise.reject(exhausted("the gateway is shutting down"));
    if (this.waiting.length === 0 && this.mayTake(identity)) {
      const c = this.next();
      if (c) {
        this.hold(identity, 1);
        return c;
      }
    }
    return this.wait(identity, watch);
  }

  /** A request is done with `c`; only a connection its session reset left clean is lent again. */
  give(c: Connection, identity: string | undefined, reusable: boolean): void {
    this.hold(identity, -1);
    // Kept only when clean, young enough, and not owed to someone who has waited longer elsewhere.
    if (reusable && !this.ended && this.young(c) && !(this.coordinator.room.size > 0 && this.coordinator.owedElsewhere(this))) {
      c.lastUsedAt = Date.now();
      this.idle.push(c);
    } else {
      void this.close(c);
    }
    this.serve();
    if (this.idle.length > 0) this.coordinator.changed();
  }

  /** Hands free (or newly countable) connections to waiters in order, passing over identities at their bound. */
  serve(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!;
      if (!this.mayTake(w.identity)) {
        i++;
        continue;
      }
      const c = this.next();
      if (!c) return;
      this.waiting.splice(i, 1);
      this.unwait(w);
      this.hold(w.identity, 1);
      w.resolve(c);
    }
  }

  /** Closes the least recently used idle connection, to make room elsewhere; settles once it has closed. */
  closeIdle(): Promise<void> | undefined {
    const c = this.idle.shift();
    return c && this.close(c);
  }

  /** Closes idle connections let go of before `before` (the idle timeout). */
  closeIdleBefore(before: number): void {
    while (this.idle.length > 0 && this.idle[0]!.lastUsedAt! < before) void this.close(this.idle.shift()!);
  }

  /** Closes every idle connection: one was found dead, and the others, idle as long, likely are too. */
  closeAllIdle(): void {
    this.closeIdleBefore(Infinity);
  }

  /** Shutting down: waiters are refused, idle connections closed, lent ones closed when given back. */
  end(): void {
    this.ended = true;
    for (const w of this.waiting.splice(0)) {
      this.unwait(w);
      w.reject(exhausted("the gateway is shutting down"));
    }
    this.closeAllIdle();
  }

  private young(c: Connection): boolean {
    return Date.now() - c.openedAt < this.limits.maxLifetimeMs;
  }

  private mayTake(identity: string | undefined): boolean {
    return identity === undefined || this.coordinator.held(identity) < this.limits.perIdentity;
  }

  private next(): Connection | undefined {
    for (let idle = this.idle.pop(); idle; idle = this.idle.pop()) {
      // Past its lifetime while it sat idle: closed now, not lent.
      if (this.young(idle)) return idle;
      void this.close(idle);
    }
    if (this.opened >= this.limits.max || !this.coordinator.budget.tryOpen(this.role)) return undefined;
    this.opened++;
    return { link: this.open(), openedAt: Date.now(), lastUsedAt: undefined };
  }

  private hold(identity: string | undefined, delta: 1 | -1): void {
    this.lent += delta;
    if (identity !== undefined) this.coordinator.hold(identity, delta);
  }

  private wait(identity: string | undefined, watch: WaitWatch | undefined): Promise<Connection> {
    const room = this.coordinator.room;
    if (room.size >= room.max) return Promise.reject(exhausted("the wait queue is full"));
    room.size++;
    return new Promise<Connection>((resolve, reject) => {
      const w: Waiter = { identity, since: Date.now(), resolve, reject };
      const giveUp = (error: unknown) => {
        const i = this.waiting.indexOf(w);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        this.unwait(w);
        reject(error);
      };
      w.timer = setTimeout(() => giveUp(exhausted("no connection became free in time")), room.timeoutMs);
      if (watch) {
        w.watching = setTimeout(() => {
          const signal = watch.signal();
          const abandon = () => giveUp(watch.cancelled(signal));
          if (signal.aborted) return abandon();
          signal.addEventListener("abort", abandon, { once: true });
          w.stopWatching = () => signal.removeEventListener("abort", abandon);
        }, WATCH_AFTER_MS);
      }
      this.waiting.push(w);
      // A waiter ahead of this one may be at its identity's bound while this one is not.
      this.serve();
      // Someone else's idle connection may have to close to make room for this one.
      if (this.waiting.includes(w)) this.coordinator.changed();
    });
  }

  private unwait(w: Waiter): void {
    clearTimeout(w.timer);
    clearTimeout(w.watching);
    w.stopWatching?.();
    this.coordinator.room.size--;
  }

  private close(c: Connection): Promise<void> {
    // Counted until it has closed: until then the server counts it too.
    return c.link
      .end()
      .catch(() => {})
      .finally(() => {
        this.opened--;
        this.coordinator.budget.closed(this.role);
        // The freed place goes to whoever has waited longest, in any pool (not to this pool first).
        this.coordinator.changed();
      });
  }
}
