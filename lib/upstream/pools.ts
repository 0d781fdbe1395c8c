// postgres.js pools, one per (database, role). The password is a function, so
// postgres.js asks for it at every login and a changed password needs no
// rebuild (porsager/postgres calls `pass` per connection).
import postgres from "postgres";
import { GatewayError, SQLSTATE } from "../errors.ts";
import { fromDriverError } from "./errors.ts";
import { ExchangeWatcher, watchedSocket, type LoginOutcome } from "./login-exchange.ts";
import type { StartupParameters } from "../connection/caller.ts";
import { PreparedStatements } from "./prepared-statements.ts";
import { createSession, NotStarted, type Session } from "./session.ts";
import { startupSettings } from "./startup-settings.ts";
import { exhausted, Slots, WaitingRoom } from "./slots.ts";
import { driverOptions, type RoleCredentials, type UpstreamSettings } from "./upstream-settings.ts";

export type { Session } from "./session.ts";
export type { RoleCredentials, UpstreamSettings } from "./upstream-settings.ts";

/** How long a discarded pool waits for its requests at most before it is closed under them. */
const DRAIN_LIMIT_MS = 120_000;

const NO_CREDENTIALS: RoleCredentials = { password: () => undefined, refresh: async () => false };

interface Entry {
  readonly sql: postgres.Sql;
  readonly session: Session;
  password: string | undefined;
  /** Requests currently using the pool; only pools with none are closed to make room. */
  leases: number;
  /** The role's configured password as last resolved (secrets rotate; each use refreshes it). */
  configured: string | undefined;
  /** Statements in flight on the pool, and requests waiting for a place. */
  readonly slots: Slots;
  /** When a request last finished on this pool. */
  lastUsedAt: number;
  /** Set while a discarded pool waits for its last request. */
  drained?: () => void;
}

export class Pools {
  /** Callers' pools in least-recently-used-first order (a Map iterates in insertion order). */
  private readonly pools = new Map<string, Entry>();
  private readonly servicePools = new Map<string, postgres.Sql>();
  private readonly waitingRoom: WaitingRoom;
  constructor(
    private readonly settings: UpstreamSettings,
    /** Asked at every login, so a rotated password needs no pool rebuild. */
    private readonly credentials: RoleCredentials = NO_CREDENTIALS,
  ) {
    if (settings.maxTotal < settings.max) throw new RangeError("maxTotal must be at least max");
    // Waiting for a place and waiting for room for a new pool share one time bound.
    this.waitingRoom = new WaitingRoom(settings.maxQueue ?? 1000, settings.queueTimeoutMs ?? settings.connectTimeout * 1000);
  }

  /** How many callers' pools exist (each may hold up to `max` connections). */
  get size(): number {
    return this.pools.size;
  }

  /**
   * Run `fn` on the pool for (database, role, startup parameters), holding a
   * lease on it so it is never closed under a running statement. `password`
   * is the latest verified one, for passthrough logins.
   */
  async use<T>(
    database: string,
    user: string,
    password: string | undefined,
    startup: StartupParameters,
    fn: (session: Session) => Promise<T>,
  ): Promise<T> {
    // Resolve a configured password first: if its secret cannot be had, fail now (08001),
    // not inside a login attempt.
    const answer = this.credentials.password(user);
    let configured = answer instanceof Promise ? await answer : answer;
    // Startup parameters are the request's settings, not a pool of their own (startup-settings.ts).
    const settings = startupSettings(startup);
    const key = JSON.stringify([database, user]);
    let entry = this.pools.get(key);
    if (entry) {
      entry.leases++;
    } else {
      entry = await this.create(key, database, user);
    }
    // Most recently used last.
    this.pools.delete(key);
    this.pools.set(key, entry);
    if (password !== undefined) entry.password = password;
    entry.configured = configured;
    const wait = entry.slots.take();
    if (wait) {
      try {
        await wait;
      } catch (err) {
        this.release(entry);
        throw err;
      }
    }
    // A pool unused for a while is asked first whether its connection still lives (see NotStarted).
    const stale = Date.now() - entry.lastUsedAt > (this.settings.staleAfterMs ?? 5000);
    const session: Session =
      stale || settings.length > 0 ? { ...entry.session, lease: (f) => entry.session.lease(f, { probe: stale, settings }) } : entry.session;
    try {
      try {
        return await fn(session);
      } catch (err) {
        // A rotated secret: the database refused the configured password. Fetch it again, retry once.
        // Only a refused login (FATAL): a statement can raise 28P01 too, and one that had run
        // must not run again.
        if (err instanceof GatewayError && err.code === SQLSTATE.invalidPassword && err.fields.severity === "FATAL" && (await this.credentials.refresh(user))) {
          configured = await this.credentials.password(user);
          entry.configured = configured;
          return await fn(session);
        }
        // Nothing was sent (the pool closed while this request waited, or its connection was found
        // dead first): a fresh pool runs it. Anything sent is never run again (see run.ts: 08007).
        if (err instanceof NotStarted) {
          this.discard(key, entry);
          return await this.use(database, user, password, startup, fn);
        }
        throw err;
      }
    } finally {
      entry.lastUsedAt = Date.now();
      entry.slots.give();
      this.release(entry);
    }
  }

  /** A request lets go of a pool; an unused pool may be what a waiting creator needs. */
  private release(entry: Entry): void {
    entry.leases--;
    if (entry.leases === 0) {
      entry.drained?.();
      this.wake();
    }
  }

  /**
   * Take a pool out of use and close it; it counts against the bound until it
   * has closed. For an idle pool that makes room, and for one whose server
   * connection was lost (the next request opens a new pool). It is closed
   * once its last request is done: one caller's dirty session must not cut
   * the statements others are running on the same pool.
   */
  private discard(key: string, entry: Entry): void {
    if (this.pools.get(key) !== entry) return;
    entry.session.retire();
    this.pools.delete(key);
    this.closing++;
    const done = new Promise<void>((resolve) => {
      if (entry.leases === 0) return resolve();
      entry.drained = resolve;
      // Every request has a deadline (HBAGATE_REQUEST_TIMEOUT_MS); this only bounds a stuck one.
      setTimeout(resolve, DRAIN_LIMIT_MS).unref();
    });
    void done
      // A grace period: a connection still opening is let finish (postgres.js's own type lookup
      // on a new connection rejects unhandled if the connection is destroyed under it).
      .then(() => entry.sql.end({ timeout: 5 }))
      .finally(() => {
        this.closing--;
        this.wake();
      });
  }

  /** Pool creation is serialized, so two creators never count the same free slot. */
  private creating: Promise<unknown> = Promise.resolve();

  private create(key: string, database: string, user: string): Promise<Entry> {
    // The wait is bounded from now, not from this creator's turn: creators wait one after another.
    const deadline = Date.now() + this.waitingRoom.timeoutMs;
    const run = this.creating.then(async () => {
      const existing = this.pools.get(key);
      if (existing) {
        existing.leases++;
        return existing;
      }
      await this.makeRoom(this.settings.max, deadline);
      const base = driverOptions(this.settings, database, user);
      const preparable = this.settings.preparedStatements ?? 100;
      const statements = new PreparedStatements(preparable);
      const sql = postgres({
        ...base,
        max: this.settings.max,
        // Each query says whether it is prepared; postgres.js ignores that unless the pool allows it.
        prepare: preparable > 0,
        // A role with configured credentials logs in with them; otherwise with the caller's own password.
        pass: () => created.configured ?? created.password ?? "",
      });
      const created: Entry = {
        sql,
        session: createSession(sql, statements, {
          cancelDeliveryTimeoutMs: this.settings.connectTimeout * 1000,
          resetTimeoutMs: this.settings.connectTimeout * 1000,
          discard: () => this.discard(key, created),
        }),
        password: undefined,
        configured: undefined,
        leases: 1,
        slots: new Slots(this.settings.max, this.waitingRoom),
        lastUsedAt: Date.now(),
      };
      this.pools.set(key, created);
      return created;
    });
    this.creating = run.catch(() => undefined);
    return run;
  }

  /**
   * Close idle pools, least recently used first, until `needed` more
   * connections fit under maxTotal, counting pools still closing and
   * verification logins. With no idle pool, wait for one (a lease ending)
   * until `deadline`, then fail with 53300.
   */
  private async makeRoom(needed: number, deadline: number): Promise<void> {
    const { max, maxTotal } = this.settings;
    while ((this.pools.size + this.closing) * max + this.logins + needed > maxTotal) {
      const idle = [...this.pools].find(([, e]) => e.leases === 0);
      if (idle) {
        this.discard(idle[0], idle[1]);
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.waitForChange(left))) throw exhausted(`all ${maxTotal} upstream connections are in use`);
    }
  }

  private closing = 0;
  private waiters: (() => void)[] = [];

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves true when a lease ends or a pool finishes closing, false after `ms`. */
  private waitForChange(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** A small pool for the gateway's own catalog lookups, logged in with configured credentials. */
  service(database: string, user: string, password: () => string): postgres.Sql {
    const key = JSON.stringify([database, user]);
    let sql = this.servicePools.get(key);
    if (!sql) {
      sql = postgres({ ...driverOptions(this.settings, database, user), max: 1, pass: password });
      this.servicePools.set(key, sql);
    }
    return sql;
  }

  /**
   * Log in as `user` with `password` on a connection of its own and report
   * what the server asked for: whether that proves the password is for the
   * caller's line to decide. Refusals (class 28) come back as outcomes, other
   * failures (the server unreachable) are thrown.
   */
  async login(database: string, user: string, password: string): Promise<LoginOutcome> {
    // A verification login is an upstream connection too: it counts against maxTotal.
    const deadline = Date.now() + this.waitingRoom.timeoutMs;
    const reserve = this.creating.then(async () => {
      await this.makeRoom(1, deadline);
      this.logins++;
    });
    this.creating = reserve.catch(() => undefined);
    await reserve;
    const watcher = new ExchangeWatcher();
    const sql = postgres({
      ...driverOptions(this.settings, database, user),
      // TLS is negotiated by the watched socket (see login-exchange.ts).
      ssl: false,
      ...({ socket: watchedSocket(this.settings, watcher) } as object),
      fetch_types: false,
      max: 1,
      pass: password,
    });
    try {
      await sql`select 1`;
      return { ok: true, exchange: watcher.exchange, ...(watcher.exchange === "password" ? { systemUser: await systemUser(sql) } : {}) };
    } catch (err) {
      const e = fromDriverError(err);
      if (e.code.startsWith("28")) return { ok: false, code: e.code, reason: e.message };
      throw e;
    } finally {
      await sql.end({ timeout: 0 });
      this.logins--;
      this.wake();
    }
  }

  /** Verification logins in progress. */
  private logins = 0;

  async close(): Promise<void> {
    const all = [...[...this.pools.values()].map((e) => e.sql), ...this.servicePools.values()];
    this.pools.clear();
    this.servicePools.clear();
    await Promise.all(all.map((sql) => sql.end({ timeout: 1 })));
  }
}

/** PostgreSQL 16+'s `system_user` for this session; undefined where the server has none. */
async function systemUser(sql: postgres.Sql): Promise<string | null | undefined> {
  try {
    const [row] = await sql`select system_user as s`;
    return (row?.s as string | null | undefined) ?? null;
  } catch (err) {
    // 42703: before PostgreSQL 16 `system_user` is no keyword, just an unknown column.
    if (err instanceof postgres.PostgresError && err.code === "42703") return undefined;
    throw err;
  }
}
