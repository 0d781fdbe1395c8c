// Statements on the caller's pooled connection -> results: one statement on
// its own, or a batch in one transaction that rolls back on the first error;
// each at most once (a connection lost with it on it is 08007), within the
// response limits, cancelled on the server when the caller leaves.
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { answerTooLarge, fromDriverError, isConnectionLoss, lostInFlight, sessionEnded } from "../upstream/errors.ts";
import { NotStarted, type Session } from "../upstream/session.ts";
import { parameterText } from "../upstream/json-types.ts";
import type { Completion, WireConnection } from "../upstream/wire-connection.ts";
import { cancellable, cancelledBy, isCancelled, OwnCancel, type Disconnect, type Watch } from "../cancel/statement.ts";
import { Budget, type ResponseLimits } from "./limits.ts";
import type { Statement, TransactionOptions } from "./request.ts";
import { sinkFor, type ResultMode, type ResultOf } from "./results.ts";

async function runOne<M extends ResultMode>(
  conn: WireConnection,
  s: Statement,
  mode: M,
  budget: Budget,
  watch: Watch | undefined,
  prepare: boolean,
  session: Session,
  /** Called once the statement is on its way (the session's reset may follow it at once). */
  sent?: () => void,
): Promise<ResultOf<M>> {
  const sink = sinkFor(mode, session.arrayTypes());
  const rows: unknown[] = [];
  let exceeded: GatewayError | undefined;
  const own = new OwnCancel(conn.key, session.cancels);
  let completion: Completion;
  try {
    completion = await underOwnCancel(own, conn, watch, () => {
      // Always the extended protocol, parameters or not: one statement per query, as Neon does.
      const running = conn.run({
        text: s.query,
        params: (s.params ?? []).map(parameterText),
        prepare,
        columns: (columns) => sink.columns(columns),
        row(values) {
          if (exceeded) return;
          const { value, size } = sink.row(values);
          exceeded = budget.take(size);
          if (exceeded) own.send();
          else rows.push(value);
        },
      });
      sent?.();
      return running;
    });
  } catch (err) {
    // Over a limit, and the statement did not complete: cancelled (nothing of it kept), or its
    // connection cut under its answer (a write may have committed before the cut).
    if (exceeded) throw withOutcome(exceeded, isCancelled(err) ? CANCELLED_OVER_LIMIT : UNKNOWN_OVER_LIMIT);
    if (answerTooLarge(err)) throw withOutcome(budget.overBytes(err), UNKNOWN_OVER_LIMIT);
    // Ours: the caller left, or the request's deadline passed.
    if (own.sent && isCancelled(err)) throw cancelledBy(watch?.signal);
    throw err;
  }
  // Over a limit, yet the statement ran to completion before its cancel landed: a write outside a
  // transaction is committed, and the caller must know it.
  if (exceeded) throw withOutcome(exceeded, COMPLETED_OVER_LIMIT);
  return sink.result(completion, rows);
}

/**
 * A batch's own statement (BEGIN, COMMIT, ROLLBACK), under the request's
 * deadline and the caller's presence as the caller's statements are: a
 * COMMIT that runs deferred triggers can take as long as any statement.
 */
async function runControl(conn: WireConnection, text: string, watch: Watch | undefined, session: Session): Promise<void> {
  const own = new OwnCancel(conn.key, session.cancels);
  try {
    await underOwnCancel(own, conn, watch, () => conn.run({ text, params: [], prepare: false, row: () => {} }));
  } catch (err) {
    if (own.sent && isCancelled(err)) throw cancelledBy(watch?.signal);
    throw err;
  }
}

/**
 * `run` (one statement on `conn`) under `own` cancel: sent when the caller
 * leaves or the deadline passes (or by `run` itself, over a limit), the
 * connection cut if it goes unanswered. It settles only once that cancel can
 * no longer reach the connection (CancelRequests), so the connection is not
 * let go of before.
 */
async function underOwnCancel<T>(own: OwnCancel, conn: WireConnection, watch: Watch | undefined, run: () => Promise<T>): Promise<T> {
  let done = false;
  try {
    return await cancellable(
      watch,
      () => own.send(),
      () => conn.cut(),
      () => run().finally(() => (done = true)),
    );
  } finally {
    own.finished = done;
    if (own.sent) await own.sent;
  }
}

// What became of a statement whose answer was over a limit (the 53400's detail): a 507 for an
// INSERT … RETURNING says whether the row is there.
const COMPLETED_OVER_LIMIT = "The statement ran to completion; only its answer was over the limit. Outside a transaction, its changes are committed.";
const CANCELLED_OVER_LIMIT = "The statement was cancelled before it completed: none of its changes were kept.";
const UNKNOWN_OVER_LIMIT = "The connection was cut while the answer arrived: the statement may have completed, and outside a transaction committed.";

const withOutcome = (e: GatewayError, detail: string): GatewayError => new GatewayError({ ...e.fields, detail }, { cause: e.cause });

/**
 * Run `attempt` once. It is never run again: with a connection of its own
 * per request, held until its own cancels have landed and its session has
 * been reset, a cancel meant for another request cannot end it, and a
 * request whose connection was lost may have taken effect (08007).
 */
async function runOnce<T>(session: Session, attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (err) {
    if (err instanceof NotStarted) throw err;
    throw fromDriverError(err);
  }
}

/** The connection was lost with the request on it: whether it took effect is unknown (08007). */
function outcomeUnknown(err: unknown): unknown {
  if (!lostInFlight(err)) return err;
  return new GatewayError(
    {
      code: SQLSTATE.transactionResolutionUnknown,
      message: "the connection to the database was lost while the request was on it: it may or may not have taken effect",
      hint: "Check whether it did before sending it again.",
    },
    { cause: err },
  );
}

function beginMode(o: TransactionOptions): string {
  return [o.isolation ? `isolation level ${o.isolation}` : "", o.readOnly ? "read only" : "", o.deferrable ? "deferrable" : ""]
    .filter(Boolean)
    .join(" ");
}

export async function runSingle<M extends ResultMode>(
  session: Session,
  s: Statement,
  mode: M,
  limits: ResponseLimits,
  disconnect?: Disconnect,
): Promise<ResultOf<M>> {
  // Outside a transaction a statement that DDL invalidated ("cached plan must not change result
  // type") is prepared again and run (wire-connection.ts): the caller never sees it.
  return runOnce(session, () =>
    session.lease(async (conn, lastSent) => {
      const prepare = session.prepare(s.query);
      try {
        return await runOne(conn, s, mode, new Budget(limits), disconnect && { disconnect }, prepare, session, lastSent);
      } catch (err) {
        if (prepare && !conn.holds(s.query)) session.unprepared(s.query);
        // The connection's session had ended before the statement was written: it can run elsewhere.
        if (sessionEnded(err)) throw new NotStarted("the connection had closed before the statement was sent", { cause: err });
        throw outcomeUnknown(err);
      }
    }, disconnect && { signal: disconnect, cancelled: cancelledBy }, true),
  );
}

export async function runBatch<M extends ResultMode>(
  session: Session,
  statements: readonly Statement[],
  options: TransactionOptions,
  mode: M,
  limits: ResponseLimits,
  disconnect?: Disconnect,
): Promise<ResultOf<M>[]> {
  return runOnce(session, () =>
    // A lost session needs no ROLLBACK: the server discards the transaction itself.
    session.lease(async (tx) => {
      const budget = new Budget(limits);
      const watch = disconnect && { disconnect };
      const control = (text: string) => runControl(tx, text, watch, session);
      let committing = false;
      try {
        try {
          await control(`begin ${beginMode(options)}`);
        } catch (err) {
          if (sessionEnded(err)) throw new NotStarted("the connection had closed before the batch was sent", { cause: err });
          throw err;
        }
        const out: ResultOf<M>[] = [];
        // Unprepared: inside a transaction, a prepared statement that DDL invalidated cannot be
        // retried (the transaction is already aborted), so a batch would fail where it need not.
        for (const s of statements) out.push(await runOne(tx, s, mode, budget, watch, false, session));
        committing = true;
        await control("commit");
        return out;
      } catch (err) {
        if (err instanceof NotStarted) throw err;
        // Lost before COMMIT was sent, or the session ended between two statements (or before
        // COMMIT was written: the rest was never sent): the server discards the transaction.
        if (sessionEnded(err) || (!committing && lostInFlight(err))) {
          throw new GatewayError({ code: SQLSTATE.connectionFailure, message: "the connection to the database was lost before the batch committed: none of it took effect" }, { cause: err });
        }
        // Lost once COMMIT was sent: it may have committed.
        if (committing) throw outcomeUnknown(err);
        const e = fromDriverError(err);
        if (!isConnectionLoss(e.code)) await control("rollback").catch(() => {});
        throw e;
      }
    }, disconnect && { signal: disconnect, cancelled: cancelledBy }),
  );
}
