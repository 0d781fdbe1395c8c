// A JSON request -> statement(s) on the caller's pooled connection -> results.
// One statement runs on its own; {"queries": [...]} runs them all in one
// transaction that rolls back on the first error.
import type postgres from "postgres";
import { z } from "zod";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { fromDriverError, isConnectionLoss, lostInFlight } from "../upstream/errors.ts";
import { answerTooLarge, sessionEnded } from "../upstream/errors.ts";
import { NotStarted, Unusable } from "../upstream/session.ts";
import { parameterText } from "../upstream/json-types.ts";
import { typeSize } from "./type-sizes.ts";
import type { Session } from "../upstream/session.ts";
import type { CancelRequests } from "../upstream/cancel-requests.ts";
import { Budget, jsonLength, type ResponseLimits } from "./limits.ts";
import { refuseUnsafe } from "./refused-statements.ts";

export { responseWithinLimits, type ResponseLimits } from "./limits.ts";

type RawValue = Uint8Array | null;

/**
 * Bind parameters in one statement: PostgreSQL takes 65535, postgres.js
 * refuses 65534 and more (with an error that is not the caller's to read).
 */
const MAX_PARAMS = 65533;
/** Deeper JSON parameters are refused: turning them into text would exhaust the stack. */
const MAX_PARAM_DEPTH = 100;

/** Nesting depth of a JSON value, walked without recursion. */
function depth(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (d + 1 > max) max = d + 1;
    if (max > MAX_PARAM_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

const Statement = z
  .object({
    query: z.string().min(1, "query must not be empty"),
    // Neon's per-statement option; rows are arrays either way on /sql.
    arrayMode: z.boolean().optional(),
    // Any JSON value; each is sent as text (objects and arrays as JSON text).
    params: z.array(z.unknown()).max(MAX_PARAMS, `at most ${MAX_PARAMS} parameters per statement`).optional(),
  })
  .strict();
export type Statement = z.infer<typeof Statement>;

const Body = z.union([Statement, z.object({ queries: z.array(Statement).min(1).max(1000) }).strict()]);

export type QueryRequest = { readonly kind: "single"; readonly statement: Statement } | { readonly kind: "batch"; readonly statements: readonly Statement[] };

export interface TransactionOptions {
  readonly isolation?: "read uncommitted" | "read committed" | "repeatable read" | "serializable";
  readonly readOnly?: boolean;
  readonly deferrable?: boolean;
}

/** Rows as JSON objects with typed values (/v1), serialised once, with the whole response. */
export interface StatementResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: readonly { readonly name: string; readonly dataTypeID: number }[];
  readonly rows: readonly Record<string, unknown>[];
}

/** Rows as arrays of PostgreSQL's text output, with Neon's field metadata (/sql). */
export interface TextResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: readonly TextField[];
  /** Each row's JSON text: an array of strings and nulls. */
  readonly rowsJson: readonly string[];
}

export interface TextField {
  readonly name: string;
  readonly dataTypeID: number;
  readonly tableID: number;
  readonly columnID: number;
  readonly dataTypeSize: number;
  readonly dataTypeModifier: number;
  readonly format: "text";
}

export type ResultMode = "json" | "text";
export type ResultOf<M extends ResultMode> = M extends "json" ? StatementResult : TextResult;

export function parseQueryRequest(value: unknown): QueryRequest {
  const parsed = Body.safeParse(value);
  if (!parsed.success) {
    // A union reports every branch; the single-statement branch speaks to most callers.
    const issues = parsed.error.issues.flatMap((i) => (i.code === "invalid_union" ? (i.errors[0] ?? []) : [i]));
    const issue = issues[0];
    const where = issue && issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw gatewayError(SQLSTATE.invalidParameterValue, `invalid request body: ${where}${issue?.message ?? "invalid"}`, {
      hint: 'Send {"query": "...", "params": [...]} or {"queries": [{"query": ...}, ...]}.',
    });
  }
  const body = parsed.data;
  const statements = "queries" in body ? body.queries : [body];
  for (const s of statements) {
    if (s.query.includes("\0")) throw gatewayError(SQLSTATE.invalidParameterValue, "query contains a NUL byte");
    (s.params ?? []).forEach((p, i) => {
      if (depth(p) > MAX_PARAM_DEPTH) {
        throw gatewayError(SQLSTATE.invalidParameterValue, `parameter $${i + 1} is nested deeper than ${MAX_PARAM_DEPTH} levels`);
      }
    });
  }
  refuseUnsafe(statements, "queries" in body);
  return "queries" in body ? { kind: "batch", statements: body.queries } : { kind: "single", statement: body };
}

const utf8 = new TextDecoder();

/**
 * Whether the caller is still there. Asking the runtime for a request's
 * AbortSignal costs an AbortController and listeners per request, and nearly
 * every statement is done long before a disconnect could matter: a statement
 * starts watching only once it has run for WATCH_AFTER_MS. A caller who left
 * earlier is still seen then (the runtime keeps the reason), so the statement
 * is cancelled at most that much later. The same signal carries the gateway's
 * own deadline for the request (an AbortSignal.timeout), so a session whose
 * statement_timeout a caller lifted is still bounded.
 */
export type Disconnect = () => AbortSignal;
const WATCH_AFTER_MS = 20;

const disconnected = () => gatewayError(SQLSTATE.queryCanceled, "canceling statement due to client disconnect");

/** The request's signal fired: the caller left, or the gateway's own deadline passed (a TimeoutError). */
const cancelledBy = (signal: AbortSignal | undefined) =>
  (signal?.reason as { name?: string } | undefined)?.name === "TimeoutError"
    ? gatewayError(SQLSTATE.queryCanceled, "canceling statement due to the gateway's request timeout", {
        hint: "HBAGATE_REQUEST_TIMEOUT_MS bounds every request, whatever the session's statement_timeout says.",
      })
    : disconnected();

/**
 * A statement still running this long after its cancel was sent is cut off:
 * its connection is ended (a server or network that went silent answers
 * neither the statement nor the cancel).
 */
const CUT_AFTER_MS = 5000;

/** A caller who goes away cancels the statement on the server (a CancelRequest), not just the wait. */
async function cancellable<T>(watch: Watch | undefined, cancel: () => void, cut: () => void, run: () => Promise<T>): Promise<T> {
  if (!watch) return run();
  if (watch.signal?.aborted) throw cancelledBy(watch.signal);
  let signal: AbortSignal | undefined;
  let cutTimer: ReturnType<typeof setTimeout> | undefined;
  const abort = () => {
    cancel();
    cutTimer = setTimeout(cut, CUT_AFTER_MS);
  };
  const timer = setTimeout(() => {
    signal = watch.signal ??= watch.disconnect();
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  }, WATCH_AFTER_MS);
  try {
    return await run();
  } finally {
    clearTimeout(timer);
    clearTimeout(cutTimer);
    signal?.removeEventListener("abort", abort);
  }
}

/** One request's watch, shared by the statements of a batch. */
interface Watch {
  readonly disconnect: Disconnect;
  signal?: AbortSignal;
}

const textFields = (columns: postgres.ColumnList<string> | undefined): TextField[] =>
  (columns ?? []).map((c) => ({
    name: c.name,
    dataTypeID: c.type,
    tableID: c.table,
    columnID: c.number,
    dataTypeSize: typeSize(c.type),
    // postgres.js does not keep the type modifier from RowDescription.
    dataTypeModifier: -1,
    format: "text" as const,
  }));

async function runOne<M extends ResultMode>(
  sql: postgres.Sql | postgres.TransactionSql,
  s: Statement,
  mode: M,
  budget: Budget,
  watch: Watch | undefined,
  prepare: boolean,
  cancels: CancelRequests,
  /** Called once the statement is on its way (the session's reset may follow it at once). */
  sent?: () => void,
): Promise<ResultOf<M>> {
  const params = (s.params ?? []).map(parameterText) as postgres.ParameterOrJSON<never>[];
  const rows: unknown[] = [];
  let exceeded: GatewayError | undefined;
  // Always the extended protocol, parameters or not: one statement per query, as Neon does
  // (postgres.js would use the simple protocol for a query without parameters).
  const extended = { simple: false, prepare } as postgres.UnsafeQueryOptions;
  // /v1: rows as postgres.js builds them, serialised once with the response. /sql: raw rows,
  // PostgreSQL's text passed through (each row serialised as it arrives).
  const query = mode === "json" ? sql.unsafe(s.query, params, extended) : sql.unsafe(s.query, params, extended).raw();
  const own = new OwnCancel(query, cancels);
  let result;
  try {
    const running = cancellable(
      watch,
      () => own.send(),
      () => void (sql as postgres.Sql).end({ timeout: 0 }).catch(() => {}),
      () =>
        (query as unknown as postgres.PendingQuery<postgres.Row[]>).forEach((row: unknown) => {
          if (exceeded) return;
          let value: unknown;
          let size: number;
          if (mode === "json") {
            value = row;
            size = jsonLength(row as Record<string, unknown>);
          } else {
            const text = JSON.stringify((row as RawValue[]).map((v) => (v === null ? null : utf8.decode(v))));
            value = text;
            size = text.length;
          }
          exceeded = budget.take(size);
          if (exceeded) own.send();
          else rows.push(value);
        }),
    );
    sent?.();
    result = await running;
    // COPY is refused before it is sent (refused-statements.ts); should one start anyway,
    // postgres.js hands back a stream that nobody reads: end it, and the session with it.
    if (typeof (result as unknown as { pipe?: unknown }).pipe === "function") {
      const stream = result as unknown as NodeJS.EventEmitter & { destroy(error?: Error): void };
      stream.on("error", () => {});
      stream.destroy(new Error("COPY is not supported by hbagate"));
      throw new Unusable(gatewayError(SQLSTATE.featureNotSupported, "COPY is not supported by hbagate"));
    }
  } catch (err) {
    // Over a limit, and the statement did not complete: cancelled (nothing of it kept), or its
    // connection cut under its answer (a write may have committed before the cut).
    if (exceeded) throw withOutcome(exceeded, isCancelled(err) ? CANCELLED_OVER_LIMIT : UNKNOWN_OVER_LIMIT);
    if (answerTooLarge(err)) throw withOutcome(budget.overBytes(err), UNKNOWN_OVER_LIMIT);
    // Ours: the caller left, or the request's deadline passed. (postgres.js reports one taken off
    // its queue as a plain Error.)
    if (own.sent && isCancelled(err)) throw cancelledBy(watch?.signal);
    throw err;
  } finally {
    own.finished = true;
    // The connection is not let go of while the cancel could still reach it (CancelRequests).
    if (own.sent) await own.sent;
  }
  // Over a limit, yet the statement ran to completion before its cancel landed: a write outside a
  // transaction is committed, and the caller must know it.
  if (exceeded) throw withOutcome(exceeded, COMPLETED_OVER_LIMIT);
  if (mode === "json") {
    const out: StatementResult = {
      command: result.command,
      rowCount: result.count ?? null,
      fields: (result.columns ?? []).map((c) => ({ name: c.name, dataTypeID: c.type })),
      rows: rows as Record<string, unknown>[],
    };
    return out as ResultOf<M>;
  }
  const out: TextResult = { command: result.command, rowCount: result.count ?? null, fields: textFields(result.columns), rowsJson: rows as string[] };
  return out as ResultOf<M>;
}

// What became of a statement whose answer was over a limit (the 53400's detail): a 507 for an
// INSERT … RETURNING says whether the row is there.
const COMPLETED_OVER_LIMIT = "The statement ran to completion; only its answer was over the limit. Outside a transaction, its changes are committed.";
const CANCELLED_OVER_LIMIT = "The statement was cancelled before it completed: none of its changes were kept.";
const UNKNOWN_OVER_LIMIT = "The connection was cut while the answer arrived: the statement may have completed, and outside a transaction committed.";

const withOutcome = (e: GatewayError, detail: string): GatewayError => new GatewayError({ ...e.fields, detail }, { cause: e.cause });

/** A statement's own cancel (caller gone, limit passed): sent at most once, and waited for. */
class OwnCancel {
  sent: Promise<void> | undefined;
  finished = false;
  constructor(
    private readonly query: object,
    private readonly cancels: CancelRequests,
  ) {}
  send(): void {
    this.sent ??= this.cancels.send(this.query, () => this.finished);
  }
}

const isCancelled = (err: unknown) => (err as { code?: unknown } | null)?.code === SQLSTATE.queryCanceled;

/**
 * Run `attempt` once. It is never run again: with a connection of its own
 * per request, held until its own cancels have landed and its session has
 * been reset, a cancel meant for another request cannot end it, and a
 * request whose connection was lost may have taken effect (08007).
 */
async function runOnce<T>(session: Session, attempt: () => Promise<T>): Promise<T> {
  try {
    await session.holds.passed();
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
  // Outside a transaction postgres.js re-prepares a statement that DDL invalidated
  // ("cached plan must not change result type") and retries it: the caller never sees it.
  return runOnce(session, () =>
    session.lease(async (conn, lastSent) => {
      try {
        return await runOne(conn, s, mode, new Budget(limits), disconnect && { disconnect }, session.prepare(s.query), session.cancels, lastSent);
      } catch (err) {
        // The connection's session had ended before the statement was written: it can run elsewhere.
        if (sessionEnded(err)) throw new NotStarted("the connection had closed before the statement was sent", { cause: err });
        throw outcomeUnknown(err);
      }
    }, disconnect && { signal: disconnect, cancelled: cancelledBy }),
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
    // One connection and our own BEGIN/COMMIT/ROLLBACK rather than sql.begin(): when the server
    // dies mid-batch, postgres.js's begin() still writes a ROLLBACK to the dead socket, which
    // throws out of a timer and would take the process down. A lost session needs no ROLLBACK:
    // the server discards the transaction itself.
    session.lease(async (tx) => {
      const budget = new Budget(limits);
      const watch = disconnect && { disconnect };
      const plain = { simple: false } as postgres.UnsafeQueryOptions;
      const control = async (text: string) => {
        await tx.unsafe(text, [], plain);
      };
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
        for (const s of statements) out.push(await runOne(tx, s, mode, budget, watch, false, session.cancels));
        committing = true;
        await control("commit");
        return out;
      } catch (err) {
        if (err instanceof Unusable || err instanceof NotStarted) throw err;
        // Lost before COMMIT was sent, or the session ended between two statements (or before
        // COMMIT was written: the rest was never sent): the server discards the transaction.
        if (sessionEnded(err) || (!committing && lostInFlight(err))) {
          throw new GatewayError({ code: SQLSTATE.connectionFailure, message: "the connection to the database was lost before the batch committed: none of it took effect" }, { cause: err });
        }
        // Lost once COMMIT was sent: it may have committed.
        if (committing) throw outcomeUnknown(err);
        const e = fromDriverError(err);
        if (!isConnectionLoss(e.code)) await tx.unsafe("rollback", [], plain).catch(() => {});
        throw e;
      }
    }, disconnect && { signal: disconnect, cancelled: cancelledBy }),
  );
}
