// A pool as a request sees it: a connection of its own for the request's
// statements, reset before anyone else gets it; which statements to prepare;
// the cancels sent on its connections, and what a new statement waits for.
import type postgres from "postgres";
import { CancelRequests } from "./cancel-requests.ts";
import { Holds } from "./holds.ts";
import type { PreparedStatements } from "./prepared-statements.ts";
import { gatewayError, SQLSTATE } from "../errors.ts";
import { connectionClosed } from "./errors.ts";
import { resetSession, type ResetOutcome } from "./session-reset.ts";
import type { StartupSettings } from "./startup-settings.ts";

export interface Session {
  /** Whether to run `query` as a named prepared statement (counts the sighting). */
  prepare(query: string): boolean;
  /** CancelRequests sent on these connections. */
  readonly cancels: CancelRequests;
  /** What a new statement waits for before it starts (cancels in flight). */
  readonly holds: Holds;
  /**
   * Run `fn` on a connection of the request's own. Nobody else's statement
   * runs on it meanwhile, and what `fn` leaves on the session is undone
   * before the connection is let go of (session-reset.ts); a connection that
   * cannot be reset is never handed out again. `fn` may call `lastSent()`
   * once it has sent its last statement: the reset is then sent behind it at
   * once (one round trip for both) instead of after `fn`'s answer.
   */
  lease<T>(
    fn: (conn: postgres.ReservedSql, lastSent: () => void) => Promise<T>,
    options?: { readonly probe?: boolean; readonly settings?: StartupSettings },
  ): Promise<T>;
  /** The pool is being closed: later leases fail with NotStarted before anything is sent. */
  retire(): void;
}

/**
 * Nothing of the request reached the server: the pool was closed while it
 * waited, or its connection turned out dead before the request was written.
 * The one failure after which a request may run again elsewhere.
 */
export class NotStarted extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
  }
}

export function createSession(
  sql: postgres.Sql,
  statements: PreparedStatements,
  options: {
    readonly cancelDeliveryTimeoutMs: number;
    /** A reset that takes longer than this counts as failed (a connection that stopped answering). */
    readonly resetTimeoutMs: number;
    /** The pool's connections cannot be trusted any more (a reset failed): close them, open new ones. */
    readonly discard: (reason: unknown) => void;
  },
): Session {
  const holds = new Holds();
  let retired = false;
  return {
    prepare: (query) => statements.shouldPrepare(query),
    cancels: new CancelRequests(holds, options.cancelDeliveryTimeoutMs),
    holds,
    retire() {
      retired = true;
    },
    async lease(fn, probeFirst) {
      // postgres.js would open a new connection for a reservation on a pool that is ending.
      if (retired) throw new NotStarted("the pool was closed before the request started");
      const conn = await reserveWithin(sql, options.resetTimeoutMs);
      if (probeFirst?.probe) {
        // A connection unused for a while may have died silently (a Lambda thawed, a NAT timeout):
        // find out before writing the request, so that it can run elsewhere if so.
        try {
          await conn.unsafe("select 1", [], { simple: true } as postgres.UnsafeQueryOptions);
        } catch (err) {
          options.discard(err);
          throw new NotStarted("the connection was dead before the request was sent", { cause: err });
        }
      }
      const settings = probeFirst?.settings ?? [];
      let reset: Promise<ResetOutcome> | undefined;
      const lastSent = () => {
        reset ??= resetSession(conn);
      };
      let outcome: { ok: true; value: Awaited<ReturnType<typeof fn>> } | { ok: false; error: unknown };
      try {
        // The caller's startup parameters, for this request only (the reset undoes them).
        if (settings.length > 0) {
          const calls = settings.map((_, i) => `pg_catalog.set_config($${2 * i + 1}, $${2 * i + 2}, false)`).join(", ");
          await conn.unsafe(`select ${calls}`, settings.flat());
        }
        outcome = { ok: true, value: await fn(conn, lastSent) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      // A statement that failed has rolled back its own work; what it did to the session stays.
      // A connection postgres.js has closed is neither written to (it would write to the closed
      // socket from a timer: an uncaught error) nor released (that would hand the closed
      // connection out as an open one).
      let state: ResetOutcome;
      if (!outcome.ok && connectionClosed(outcome.error)) state = "closed";
      else if (!outcome.ok && outcome.error instanceof Unusable) state = "dirty";
      else {
        lastSent();
        state = await withDeadline(reset!, options.resetTimeoutMs);
      }
      if (state === "clean") conn.release();
      else if (state === "closed") {
        // Lost: postgres.js keeps the lost connection's object and can hand it out again with what
        // was left on its socket, or take a connect timeout to open it anew. The pool is replaced
        // (it closes once its other requests are done).
        options.discard(new Error("a connection was lost"));
      } else if (state === "dirty") {
        // It may still carry a caller's state: kept from everyone, and the pool replaced (postgres.js
        // cannot close one connection of a pool). The others' requests on it finish first.
        options.discard(new Error("a session could not be reset"));
      }
      if (!outcome.ok && outcome.error instanceof Unusable) throw outcome.error.error;
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    },
  };
}

/** `work`'s answer, or "dirty" when it takes longer than `ms` (a connection that stopped answering). */
function withDeadline(work: Promise<ResetOutcome>, ms: number): Promise<ResetOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<ResetOutcome>((resolve) => {
    timer = setTimeout(() => resolve("dirty"), ms);
  });
  return Promise.race([work.catch((): ResetOutcome => "dirty"), late]).finally(() => clearTimeout(timer));
}

/**
 * Thrown by a lease's work when its connection must not be reset and reused
 * whatever happened (postgres.js left it in a state of its own, such as a COPY
 * nobody reads): the session is ended, `error` goes to the caller.
 */
export class Unusable extends Error {
  constructor(readonly error: unknown) {
    super("the connection is left in a state it cannot be reused from");
  }
}

/**
 * A connection of the pool's, or 08001 after `ms`: postgres.js keeps a
 * reservation waiting while it reconnects to a server that is down. A
 * connection that arrives after that is handed straight back.
 */
async function reserveWithin(sql: postgres.Sql, ms: number): Promise<postgres.ReservedSql> {
  const reserving = sql.reserve();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    const conn = await Promise.race([reserving, late]);
    if (conn) return conn;
  } finally {
    clearTimeout(timer);
  }
  reserving.then((c) => c.release(), () => {});
  throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "the database is unavailable", { detail: "no connection could be opened in time" });
}
