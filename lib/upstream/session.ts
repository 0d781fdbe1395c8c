// A pool as a request sees it: a connection of its own for the request's
// statements, reset before anyone else gets it; which statements to prepare;
// the cancels sent on its connections.
import { CancelRequests } from "../cancel/cancel-requests.ts";
import type { PreparedStatements } from "./prepared-statements.ts";
import type { Connection, Lender, WaitWatch } from "./lender.ts";
import { connectionClosed, fromDriverError, sessionEnded } from "./errors.ts";
import { connectTimeout, within } from "./within.ts";
import type { Prelude, ResetOutcome, WireConnection } from "./wire-connection.ts";
import type { ArrayTypes } from "../query/typed-values.ts";
import type { StartupSettings } from "./startup-settings.ts";

export interface Session {
  /** Whether to run `query` as a named prepared statement (counts the sighting). */
  prepare(query: string): boolean;
  /** `query` was to be prepared but the server did not prepare it (its Parse failed): its place is given back. */
  unprepared(query: string): void;
  /** CancelRequests sent on these connections. */
  readonly cancels: CancelRequests;
  /** The database's array types, for /v1's typed values (typed-values.ts); known once a connection has logged in. */
  arrayTypes(): ArrayTypes;
  /**
   * Run `fn` on a connection of the request's own. Nobody else's statement
   * runs on it meanwhile, and what `fn` leaves on the session is undone
   * before the connection is let go of (session-reset.ts); a connection that
   * cannot be reset is closed. `fn` may call `lastSent()` once it has sent
   * its last statement: the reset is then sent behind it at once (one round
   * trip for both) instead of after `fn`'s answer. With `carrySettings`,
   * the request's settings go out with `fn`'s first statement, in its
   * implicit transaction (a single statement: one round trip less);
   * otherwise they are set before `fn` runs (a batch, whose BEGIN may set
   * an isolation level, which must come before any query).
   */
  lease<T>(fn: (conn: WireConnection, lastSent: () => void) => Promise<T>, watch?: WaitWatch, carrySettings?: boolean): Promise<T>;
  /** The same pool's session for a request with settings or an identity of its own (shares all else). */
  withLease(lease: LeaseOptions): Session;
}

/** What a request brings to its lease: its settings, and who it is for the per-identity bound. */
export interface LeaseOptions {
  readonly settings?: StartupSettings;
  /** The caller's identity where it is not the role itself (a mapped principal); undefined for none. */
  readonly identity?: string | undefined;
}

/**
 * Nothing of the request reached the server: its connection turned out dead
 * before the request was written. The one failure after which a request may
 * run again on another connection.
 */
export class NotStarted extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
  }
}

/** Settings up to this many are set by a statement prepared on the connection; more, by one parsed each time. */
const PREPARED_SETTINGS = 4;

/**
 * The statement that sets `count` settings for the session, from parameters
 * (name, value, name, value, …), in order. Each answers `is null` (false),
 * not the value set_config returns: a token's claims, often kilobytes, are
 * not sent back to the gateway on every request only to be dropped.
 */
export function settingStatement(count: number): string {
  return `select ${Array.from({ length: count }, (_, i) => `pg_catalog.set_config($${2 * i + 1}, $${2 * i + 2}, false) is null`).join(", ")}`;
}

/** The usual shapes, made once: a bearer request carries one setting (its claims). */
const SETTING_STATEMENTS = Array.from({ length: PREPARED_SETTINGS + 1 }, (_, count) => settingStatement(count));

/** Settings lists' preludes: a token's claims come back as the same list for as long as the token is remembered. */
const preludes = new WeakMap<StartupSettings, Prelude>();

/** The statement that sets `settings`, with its parameters. */
function preludeFor(settings: StartupSettings): Prelude {
  let prelude = preludes.get(settings);
  if (prelude === undefined) {
    const params: string[] = [];
    for (const [name, value] of settings) params.push(name, value);
    // Prepared in the usual shapes (claims, application_name, a few options): a caller choosing
    // ever more `-c` settings would otherwise leave a named statement per count on the connection.
    const prepare = settings.length <= PREPARED_SETTINGS;
    prelude = Object.freeze({ text: prepare ? SETTING_STATEMENTS[settings.length]! : settingStatement(settings.length), params: Object.freeze(params), prepare });
    preludes.set(settings, prelude);
  }
  return prelude;
}

/** What a new connection, or one idle for a while, is asked before a request is written to it (an audit of the server log expects it). */
export const PROBE = "select 1";

export function createSession(
  lender: Lender,
  statements: PreparedStatements,
  options: {
    /** Sends a CancelRequest for a connection's server key. */
    readonly cancelOnServer: (key: { readonly pid: number; readonly secret: number }) => Promise<void>;
    readonly cancelDeliveryTimeoutMs: number;
    readonly arrayTypes: () => ArrayTypes;
    /** A reset that takes longer than this counts as failed (a connection that stopped answering). */
    readonly resetTimeoutMs: number;
    /** A connection unused for longer than this is asked whether it still lives before a request is written to it. */
    readonly staleAfterMs: number;
  },
  lease: LeaseOptions = {},
): Session {
  const prepare = (query: string) => statements.shouldPrepare(query);
  const unprepared = (query: string) => statements.forget(query);
  const cancels = new CancelRequests(options.cancelOnServer, options.cancelDeliveryTimeoutMs);
  const arrayTypes = options.arrayTypes;
  // One per request that brings settings or an identity of its own: everything but lease() is the pool's.
  const leasing = (own: LeaseOptions): Session => ({
    prepare,
    unprepared,
    cancels,
    arrayTypes,
    withLease: leasing,
    async lease(fn, watch, carrySettings = false) {
      // A caller who leaves, or a request past its deadline, stops waiting for a connection too.
      const taken = lender.take(own.identity, watch);
      const waited = taken instanceof Promise;
      const c = waited ? await taken : taken;
      let reusable = false;
      try {
        // After a wait, or a new connection's login: is anyone still asking? (Checked on these slow
        // paths only: the signal costs an AbortController per request.)
        const value = await leaseOn(c, fn, own.settings ?? [], carrySettings, options, lender, watch, waited);
        reusable = value.clean;
        if (!value.ok) throw value.error;
        return value.value;
      } finally {
        lender.give(c, own.identity, reusable);
      }
    },
  });
  return leasing(lease);
}

async function leaseOn<T>(
  c: Connection,
  fn: (conn: WireConnection, lastSent: () => void) => Promise<T>,
  settings: StartupSettings,
  carrySettings: boolean,
  options: { readonly resetTimeoutMs: number; readonly staleAfterMs: number },
  lender: Lender,
  watch: WaitWatch | undefined,
  waited: boolean,
): Promise<{ ok: true; value: T; clean: boolean } | { ok: false; error: unknown; clean: boolean }> {
  if (c.lastUsedAt === undefined) {
    // A new connection logs in before the request is written: a server that is down or refuses
    // the login is then a failure to connect (08001, 28xxx), never a request of unknown outcome.
    try {
      await c.link.connect();
    } catch (err) {
      return { ok: false, error: fromDriverError(err), clean: false };
    }
  }
  const conn = c.link.wire;
  if (c.lastUsedAt !== undefined && Date.now() - c.lastUsedAt > options.staleAfterMs) {
    // A connection unused for a while may have died silently (a Lambda thawed, a NAT timeout):
    // find out before writing the request, so that it can run elsewhere if so.
    try {
      await probe(conn, options.resetTimeoutMs);
    } catch (err) {
      lender.closeAllIdle();
      return { ok: false, error: new NotStarted("the connection was dead before the request was sent", { cause: err }), clean: false };
    }
  }
  if (watch && (waited || c.lastUsedAt === undefined)) {
    const signal = watch.signal();
    if (signal.aborted) return { ok: false, error: watch.cancelled(signal), clean: true };
  }
  let reset: Promise<ResetOutcome> | undefined;
  const lastSent = () => {
    reset ??= conn.reset();
  };
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    // The caller's startup parameters, for this request only (the reset undoes them).
    if (settings.length > 0) {
      const prelude = preludeFor(settings);
      // Carried: the statement runs only once they are set, in one round trip.
      if (carrySettings) conn.carry(prelude);
      else {
        try {
          await conn.run({ ...prelude, prepare: false, row: () => {} });
        } catch (err) {
          if (sessionEnded(err)) throw new NotStarted("the connection had closed before the request was sent", { cause: err });
          throw err;
        }
      }
    }
    outcome = { ok: true, value: await fn(conn, lastSent) };
  } catch (error) {
    outcome = { ok: false, error };
    // Its session ended before the request was written: so, likely, did those of the connections
    // idle beside it (a restarted server). The request runs on a new one.
    if (error instanceof NotStarted) lender.closeAllIdle();
  } finally {
    // Settings `fn` never sent a statement to carry are not left for the reset to carry.
    conn.carry(undefined);
  }
  // A statement that failed has rolled back its own work; what it did to the session stays.
  // A lost connection is not written to again; one that must not be reused is closed, not reset.
  let state: ResetOutcome;
  if (!outcome.ok && (outcome.error instanceof NotStarted || connectionClosed(outcome.error))) state = "closed";
  else {
    lastSent();
    state = await withDeadline(reset!, options.resetTimeoutMs);
    // A statement sent after the reset went out (a plan gone stale under DDL, prepared again and
    // run behind it): reset again.
    if (state === "clean" && conn.needsReset) state = await withDeadline(conn.reset(), options.resetTimeoutMs);
  }
  const clean = state === "clean";
  if (!outcome.ok) return { ok: false, error: outcome.error, clean };
  return { ok: true, value: outcome.value, clean };
}

/**
 * The probe's answer within `ms`, or the connection ended and a connect
 * timeout: a socket that went silent (a network black hole) never answers.
 */
async function probe(conn: WireConnection, ms: number): Promise<void> {
  await within(conn.run({ text: PROBE, params: [], prepare: false, row: () => {} }).then(() => {}), ms, () => {
    conn.cut();
    throw connectTimeout("the connection did not answer");
  });
}

/** `work`'s answer, or "dirty" when it takes longer than `ms` (a connection that stopped answering). */
const withDeadline = (work: Promise<ResetOutcome>, ms: number): Promise<ResetOutcome> =>
  within(work.catch((): ResetOutcome => "dirty"), ms, (): ResetOutcome => "dirty");
