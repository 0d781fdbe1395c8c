// The gateway's upstream connections: one pool per (database, role), each a
// Lender of single connections (the gateway's own protocol client,
// wire-connection.ts), under one ConnectionBudget. The password is asked for
// at every login, so a changed password needs no rebuild. Verification logins
// and the gateway's own service queries go through postgres.js.
import postgres from "postgres";
import { GatewayError, SQLSTATE } from "../errors.ts";
import { fromDriverError } from "./errors.ts";
import { ExchangeWatcher, watchedSocket, type LoginOutcome } from "./login-exchange.ts";
import { PoolConnection } from "./pool-connection.ts";
import { WireConnection } from "./wire-connection.ts";
import { connectTimeout, within } from "./within.ts";
import { ARRAY_TYPES, type ArrayTypes } from "../query/typed-values.ts";
import type { StartupParameters } from "../connection/caller.ts";
import { PreparedStatements } from "./prepared-statements.ts";
import { cancelOnServer, openServerStream, type LoginRequest, type ServerStream } from "./session-connection.ts";
import { createSession, NotStarted, type Session } from "./session.ts";
import type { ServiceQuery } from "./service-query.ts";
import { startupSettings, type StartupSettings } from "./startup-settings.ts";
import { exhausted, WaitingRoom } from "./waiting-room.ts";
import { ConnectionBudget } from "./connection-budget.ts";
import { Lender, type Coordinator } from "./lender.ts";
import { driverOptions, type RoleCredentials, type UpstreamSettings } from "./upstream-settings.ts";

export type { Session } from "./session.ts";
export type { RoleCredentials, UpstreamSettings } from "./upstream-settings.ts";

const NO_CREDENTIALS: RoleCredentials = { password: () => undefined, alternatives: async () => [], prefer: () => {} };

/** The server refused a login (FATAL 28P01): nothing was sent. A statement can raise 28P01 too, as an ERROR. */
const refusedLogin = (err: unknown) => err instanceof GatewayError && err.code === SQLSTATE.invalidPassword && err.fields.severity === "FATAL";

/** A request whose connection was found dead before anything was written runs again, this many times at most. */
const NOT_STARTED_ATTEMPTS = 3;

interface Entry {
  readonly lender: Lender;
  readonly statements: PreparedStatements;
  /** The session of requests with no settings or identity of their own. */
  readonly session: Session;
  password: string | undefined;
  /** The database's array types, asked by its first connection (typed-values.ts). */
  arrays: ArrayTypes | undefined;
}

const NO_ARRAYS: ArrayTypes = new Map();

/** The database's array types, asked on a connection that has just logged in. */
async function arrayTypes(wire: WireConnection): Promise<ArrayTypes> {
  const arrays = new Map<number, number>();
  const decode = (v: Uint8Array | null) => Number(new TextDecoder().decode(v ?? new Uint8Array()));
  await wire.run({ text: ARRAY_TYPES, params: [], prepare: false, row: (v) => void arrays.set(decode(v[0]!), decode(v[1]!)) });
  return arrays;
}

export class Pools implements Coordinator {
  private readonly pools = new Map<string, Entry>();
  private readonly servicePools = new Map<string, postgres.Sql>();
  readonly room: WaitingRoom;
  readonly budget: ConnectionBudget;
  private readonly sweep: ReturnType<typeof setInterval>;
  constructor(
    private readonly settings: UpstreamSettings,
    /** Asked at every login, so a rotated password needs no pool rebuild. */
    private readonly credentials: RoleCredentials = NO_CREDENTIALS,
    /** How a pool connection reaches its server and logs in (a TCP socket; bench/pipeline.ts answers in-process). */
    private readonly openServer: typeof openServerStream = openServerStream,
  ) {
    if (settings.maxTotal < settings.max) throw new RangeError("maxTotal must be at least max");
    this.room = new WaitingRoom(settings.maxQueue ?? 1000, settings.queueTimeoutMs ?? settings.connectTimeout * 1000);
    this.budget = new ConnectionBudget({
      maxTotal: settings.maxTotal,
      maxPerRole: settings.maxPerRole ?? settings.max,
      // Requests always keep at least one connection.
      loginReserve: Math.min(settings.loginReserve ?? 2, settings.maxTotal - 1),
    });
    // Idle connections close after idleTimeout; postgres.js's own timer is off (lender.ts counts them).
    const every = Math.max(1000, (settings.idleTimeout * 1000) / 2);
    this.sweep = setInterval(() => this.sweepIdle(), every);
    this.sweep.unref?.();
  }

  /** How many callers' pools exist. */
  get size(): number {
    return this.pools.size;
  }

  /** Upstream connections open, opening or closing, of every kind. */
  get openConnections(): number {
    return this.budget.open;
  }

  /**
   * Run `fn` on the pool for (database, role). `password` is the latest
   * verified one, for passthrough logins; `identity` the caller's where it
   * is not the role (a mapped principal), bounded on its own.
   */
  async use<T>(
    database: string,
    user: string,
    password: string | undefined,
    startup: StartupParameters,
    fn: (session: Session) => Promise<T>,
    identity?: string,
    /** Settings of the gateway's own for this request (verified claims), applied after the caller's. */
    verified: StartupSettings = [],
  ): Promise<T> {
    // Resolve a configured password first: if its secret cannot be had, fail now (08001),
    // not inside a login attempt.
    const answer = this.credentials.password(user);
    const configured = answer instanceof Promise ? await answer : answer;
    const key = JSON.stringify([database, user]);
    let entry = this.pools.get(key);
    if (!entry) {
      entry = this.create(database, user);
      this.pools.set(key, entry);
    }
    if (password !== undefined) entry.password = password;
    // Startup parameters are the request's settings, not a pool of their own (startup-settings.ts).
    const own = startupSettings(startup);
    const settings = own.length === 0 ? verified : verified.length === 0 ? own : [...own, ...verified];
    // Identities the platform proved (peer principals) are bounded across the role's pools.
    const session = settings.length > 0 || identity !== undefined ? entry.session.withLease({ settings, identity }) : entry.session;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(session);
      } catch (err) {
        // A secret mid-rotation: the database refused the configured password. Each password the
        // role may have now is tried in turn, and the one that logs in is used from then on.
        if (refusedLogin(err) && configured !== undefined) return await this.retryProven(err, database, user, () => fn(session));
        // Nothing was sent (its connection was found dead first): another connection runs it.
        // Anything sent is never run again (see run.ts: 08007).
        if (err instanceof NotStarted && attempt < NOT_STARTED_ATTEMPTS) continue;
        if (err instanceof NotStarted) throw fromDriverError(err.cause);
        throw err;
      }
    }
  }

  /** After a refused login, `again` once if a password the role may have now logs in; otherwise the refusal. */
  private async retryProven<T>(err: unknown, database: string, user: string, again: () => Promise<T>): Promise<T> {
    if (!refusedLogin(err) || !(await this.proveAlternative(database, user))) throw err;
    return again();
  }

  /** Proofs under way, one per role: concurrent refused requests wait for the same logins. */
  private readonly proofs = new Map<string, Promise<boolean>>();

  /**
   * Which of the passwords the role may have mid-rotation the server takes,
   * each tried by a verification login of its own (never through a pool, whose
   * other requests would log in with a guess); the one it takes is preferred
   * from then on. False when none does.
   */
  private proveAlternative(database: string, user: string): Promise<boolean> {
    let proof = this.proofs.get(user);
    if (!proof) {
      proof = (async () => {
        for (const password of await this.credentials.alternatives(user)) {
          if ((await this.login(database, user, password)).ok) {
            this.credentials.prefer(user, password);
            return true;
          }
        }
        return false;
      })().finally(() => this.proofs.delete(user));
      this.proofs.set(user, proof);
    }
    return proof;
  }

  private create(database: string, user: string): Entry {
    const preparable = this.settings.preparedStatements ?? 100;
    // The text formats the typed values and Neon's clients rely on, and the statement timeout.
    const parameters: [string, string][] = [["client_encoding", "UTF8"], ["application_name", "hbagate"], ...Object.entries(driverOptions(this.settings, database, user).connection).map(([k, v]): [string, string] => [k, String(v)])];
    const open = () =>
      new PoolConnection(async () => {
        // A role with configured credentials logs in with them (the latest that logged in, mid-rotation);
        // otherwise with the caller's own password.
        const password = (await this.credentials.password(user)) ?? entry.password;
        const server = await this.openServer(this.settings, { database, user, password, parameters });
        // An answer past any response's size is cut before any of it is held (maxAnswerBytes).
        const wire = new WireConnection(server, this.settings.maxAnswerBytes);
        if (entry.arrays === undefined) {
          // Part of the login: a server that does not answer it in time is a failure to connect,
          // and the session it opened is ended, not left open uncounted.
          try {
            entry.arrays = await within(arrayTypes(wire), this.settings.connectTimeout * 1000, () => {
              throw connectTimeout("the server did not answer the array-type question");
            });
          } catch (err) {
            wire.cut();
            throw err;
          }
        }
        return wire;
      });
    const lender = new Lender(
      user,
      { max: this.settings.max, perIdentity: this.settings.maxPerIdentity ?? Math.ceil(this.settings.max / 2), maxLifetimeMs: this.settings.maxLifetime * 1000 },
      open,
      this,
    );
    const statements = new PreparedStatements(preparable, this.settings.preparedStatementBytes);
    const partial = { lender, statements, password: undefined, arrays: undefined } as Omit<Entry, "session"> & { session?: Session };
    const entry = partial as Entry;
    (partial as { session: Session }).session = this.session(entry, {});
    return entry;
  }

  private session(entry: Pick<Entry, "lender" | "statements" | "arrays">, lease: Parameters<typeof createSession>[3]): Session {
    const s = this.settings;
    return createSession(
      entry.lender,
      entry.statements,
      {
        cancelOnServer: (key) => cancelOnServer(s, key),
        cancelDeliveryTimeoutMs: s.connectTimeout * 1000,
        arrayTypes: () => entry.arrays ?? NO_ARRAYS,
        resetTimeoutMs: s.connectTimeout * 1000,
        staleAfterMs: s.staleAfterMs ?? 5000,
      },
      lease,
    );
  }

  /** Client sessions waiting for room for their dedicated connection. */
  private readonly sessionWaiters: (() => void)[] = [];
  /** Verification logins waiting for room. */
  private readonly loginWaiters: (() => void)[] = [];
  /** Idle connections closing to make room, not yet closed. */
  private closingForRoom = 0;
  private pumping = false;

  /**
   * Something changed (a connection closed or went idle, someone waits): serve
   * waiters, longest waiting first, and close other pools' idle connections,
   * least recently used first, where a bound stops a waiter.
   */
  changed(): void {
    if (this.room.size === 0 && this.loginWaiters.length === 0 && this.sessionWaiters.length === 0) return;
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.loginWaiters.length > 0 && this.budget.tryOpenLogin()) this.loginWaiters.shift()!();
      while (this.sessionWaiters.length > 0 && this.budget.tryOpenSession()) this.sessionWaiters.shift()!();
      const waiting = [...this.pools.values()].filter((e) => e.lender.waitingSince !== undefined);
      waiting.sort((a, b) => a.lender.waitingSince! - b.lender.waitingSince!);
      let needed = this.loginWaiters.length + this.sessionWaiters.length;
      for (const { lender } of waiting) {
        lender.serve();
        const unserved = lender.unserved;
        if (unserved === 0) continue;
        const full = this.budget.fullFor(lender.role);
        if (full === "role") this.makeRoom(unserved, lender.role);
        else if (full === "total") needed += unserved;
      }
      if (needed > 0) this.makeRoom(needed);
    } finally {
      this.pumping = false;
    }
  }

  private readonly byIdentity = new Map<string, number>();

  held(identity: string): number {
    return this.byIdentity.get(identity) ?? 0;
  }

  hold(identity: string, delta: 1 | -1): void {
    const n = this.held(identity) + delta;
    if (n > 0) this.byIdentity.set(identity, n);
    else this.byIdentity.delete(identity);
  }

  owedElsewhere(lender: Lender): boolean {
    const mine = lender.waitingSince ?? Infinity;
    if (this.loginWaiters.length > 0) return true;
    for (const { lender: other } of this.pools.values()) {
      if (other === lender || other.unserved === 0 || other.waitingSince! >= mine) continue;
      const full = this.budget.fullFor(other.role);
      // Closing this connection helps a waiter the total stops, or one of the same role.
      if (full === "total" || (full === "role" && other.role === lender.role)) return true;
    }
    return false;
  }

  /** Close up to `needed` idle connections (of `role`'s pools only, for a per-role bound), beyond those closing already. */
  private makeRoom(needed: number, role?: string): void {
    while (this.closingForRoom < needed) {
      let oldest: Lender | undefined;
      for (const { lender } of this.pools.values()) {
        if (role !== undefined && lender.role !== role) continue;
        const since = lender.idleSince;
        if (since !== undefined && (oldest === undefined || since < oldest.idleSince!)) oldest = lender;
      }
      if (!oldest) return;
      this.closingForRoom++;
      void oldest.closeIdle()!.finally(() => {
        this.closingForRoom--;
        this.changed();
      });
    }
  }

  /** Idle connections past the idle timeout close; pools with nothing left are forgotten. */
  private sweepIdle(): void {
    const before = Date.now() - this.settings.idleTimeout * 1000;
    for (const [key, { lender }] of this.pools) {
      lender.closeIdleBefore(before);
      if (lender.empty) this.pools.delete(key);
    }
  }

  /** A small pool for the gateway's own catalog lookups, logged in with configured credentials. */
  service(database: string, user: string, password: () => string | Promise<string>): postgres.Sql {
    const key = JSON.stringify([database, user]);
    let sql = this.servicePools.get(key);
    if (!sql) {
      // Counted as open for as long as the gateway runs: it needs it whatever the bound.
      this.budget.openForGood();
      sql = postgres({ ...driverOptions(this.settings, database, user), max: 1, pass: password });
      this.servicePools.set(key, sql);
    }
    return sql;
  }

  /**
   * The service pool as a ServiceQuery: a login refused mid-rotation (its
   * password from a secret) is tried again with each password the role may
   * have now, as request pools do (proveAlternative).
   */
  serviceQuery(database: string, user: string, password: () => string | Promise<string>): ServiceQuery {
    const sql = this.service(database, user, password);
    const run = <T extends object>(text: string, params: readonly unknown[]) =>
      (sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]) as unknown as Promise<T[]>).catch((err: unknown) => {
        throw fromDriverError(err);
      });
    return async <T extends object>(text: string, params: readonly unknown[] = []): Promise<T[]> => {
      try {
        return await run<T>(text, params);
      } catch (err) {
        return await this.retryProven(err, database, user, () => run<T>(text, params));
      }
    };
  }

  /** A place under the budget, or 53300 after the queue timeout: for a verification login (its reserve first) or a session. */
  private async place(kind: "login" | "session"): Promise<void> {
    const waiters = kind === "login" ? this.loginWaiters : this.sessionWaiters;
    if (kind === "login" ? this.budget.tryOpenLogin() : this.budget.tryOpenSession()) return;
    if (this.room.size >= this.room.max) throw exhausted("the wait queue is full");
    this.room.size++;
    try {
      await new Promise<void>((resolve, reject) => {
        const granted = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(granted);
          if (i >= 0) waiters.splice(i, 1);
          reject(exhausted(`all ${this.settings.maxTotal} upstream connections are in use`));
        }, this.room.timeoutMs);
        waiters.push(granted);
        this.changed();
      });
    } finally {
      this.room.size--;
    }
  }

  /**
   * Log in as `user` with `password` on a connection of its own and report
   * what the server asked for: whether that proves the password is for the
   * caller's line to decide. Refusals (class 28) come back as outcomes, other
   * failures (the server unreachable) are thrown.
   */
  async login(database: string, user: string, password: string): Promise<LoginOutcome> {
    // A verification login is an upstream connection too: it counts against maxTotal, and has a reserve of its own.
    await this.place("login");
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
      this.budget.closed();
      this.changed();
    }
  }

  /**
   * A connection of its own for one client session (never pooled), counted in
   * the budget's total, logged in as `user` with the role's configured
   * password or else the caller's verified one; a configured secret mid-rotation
   * is tried with each password the role may have now, as requests are.
   */
  async openSession(request: LoginRequest): Promise<ServerStream> {
    const answer = this.credentials.password(request.user);
    const configured = answer instanceof Promise ? await answer : answer;
    await this.place("session");
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      this.budget.closed();
      this.changed();
    };
    try {
      const open = (password: string | undefined) => openServerStream(this.settings, { ...request, password });
      let stream: ServerStream;
      try {
        stream = await open(configured ?? request.password);
      } catch (err) {
        if (configured === undefined) throw err;
        // A secret mid-rotation: proven as a request's is, then the session logs in with the password proven.
        stream = await this.retryProven(err, request.database, request.user, async () => open(await this.credentials.password(request.user)));
      }
      stream.onClose(uncount);
      return stream;
    } catch (err) {
      uncount();
      throw err;
    }
  }

  /**
   * Cancels what a session's server connection is running (its CancelRequest,
   * on a connection of its own, counted like a verification login). With no
   * room the cancel is dropped: a cancel is a best effort in PostgreSQL too.
   */
  async cancelSession(key: ServerStream["key"]): Promise<boolean> {
    if (!this.budget.tryOpenLogin()) return false;
    try {
      await cancelOnServer(this.settings, key);
      return true;
    } finally {
      this.budget.closed();
      this.changed();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    for (const { lender } of this.pools.values()) lender.end();
    const services = [...this.servicePools.values()];
    this.pools.clear();
    this.servicePools.clear();
    await Promise.all(services.map((sql) => sql.end({ timeout: 1 })));
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
