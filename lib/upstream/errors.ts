// postgres.js failures -> GatewayError, classified once, here.
import postgres from "postgres";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";

/**
 * The error a pool connection's queries fail with once its server session
 * has ended: postgres.js would open a new session under the next query, and
 * a batch's second statement would run outside the transaction its first
 * one began. Nothing of the failing query was sent.
 */
export const SESSION_ENDED = "HBAGATE_SESSION_ENDED";

/** Whether `err` is that error: the query was never written. */
export const sessionEnded = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === SESSION_ENDED;

/**
 * The error a pool connection's query fails with when the server announced a
 * message (a row) larger than `maxAnswerBytes`: the connection is cut before
 * any of it is held (wire-connection.ts reads a message whole).
 */
export const ANSWER_TOO_LARGE = "HBAGATE_ANSWER_TOO_LARGE";

export const answerTooLarge = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === ANSWER_TOO_LARGE;

const CONNECT_CODES = new Set(["CONNECT_TIMEOUT", "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "EPIPE"]);

/** The upstream's certificate could not be verified: no connection, as with a refused one. */
function isTlsFailure(code: string): boolean {
  return code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_") || /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code);
}

export function fromDriverError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof postgres.PostgresError) {
    const e = err;
    return new GatewayError(
      {
        code: e.code,
        message: e.message,
        severity: e.severity,
        ...(e.detail ? { detail: e.detail } : {}),
        ...(e.hint ? { hint: e.hint } : {}),
        ...(e.position ? { position: e.position } : {}),
        ...(e.internal_position ? { internalPosition: e.internal_position } : {}),
        ...(e.internal_query ? { internalQuery: e.internal_query } : {}),
        ...(e.where ? { where: e.where } : {}),
        ...(e.schema_name ? { schema: e.schema_name } : {}),
        ...(e.table_name ? { table: e.table_name } : {}),
        ...(e.column_name ? { column: e.column_name } : {}),
        ...((e as { data_type_name?: string }).data_type_name ? { dataType: (e as { data_type_name?: string }).data_type_name! } : {}),
        ...(e.constraint_name ? { constraint: e.constraint_name } : {}),
        ...(e.file ? { file: e.file } : {}),
        ...(e.line ? { line: e.line } : {}),
        ...(e.routine ? { routine: e.routine } : {}),
      },
      { cause: err },
    );
  }
  const code = (err as { code?: unknown })?.code;
  // A pool connection whose session had ended before the request was written to it.
  if (sessionEnded(err)) return new GatewayError({ code: SQLSTATE.sqlclientUnableToEstablishSqlconnection, message: "the database is unavailable", detail: "the connection had closed" }, { cause: err });
  if (typeof code === "string" && (CONNECT_CODES.has(code) || isTlsFailure(code))) {
    return new GatewayError({ code: SQLSTATE.sqlclientUnableToEstablishSqlconnection, message: "the database is unavailable", detail: code }, { cause: err });
  }
  if (typeof code === "string" && code === "UNDEFINED_VALUE") {
    return gatewayError(SQLSTATE.invalidParameterValue, "a parameter value is undefined");
  }
  return new GatewayError({ code: SQLSTATE.internalError, message: "internal error" }, { cause: err });
}

/** Class 08 and the shutdown codes mean the session is gone, not that the statement was wrong. */
export function isConnectionLoss(sqlstate: string): boolean {
  return sqlstate.startsWith("08") || sqlstate === "57P01" || sqlstate === "57P02" || sqlstate === "57P03";
}

/**
 * The driver lost the connection (a reset, a close, a timeout) as opposed to
 * the server ending the statement with an error of its own: after a request
 * was written, its outcome is then unknown.
 */
export function lostInFlight(err: unknown): boolean {
  if (sessionEnded(err)) return false;
  if (err instanceof GatewayError) return err.code === SQLSTATE.sqlclientUnableToEstablishSqlconnection && err.cause !== undefined && lostInFlight(err.cause);
  if (err instanceof postgres.PostgresError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONNECT_CODES.has(code);
}

/** Whether `err` means postgres.js has closed the connection: it lost it, or the server ended the session (FATAL). */
export function connectionClosed(err: unknown): boolean {
  const cause = err instanceof GatewayError && err.cause !== undefined ? err.cause : err;
  if (sessionEnded(cause) || answerTooLarge(cause)) return true;
  if (cause instanceof postgres.PostgresError) return cause.severity === "FATAL" || cause.severity === "PANIC";
  if (err instanceof GatewayError && err.cause === undefined) return false;
  return lostInFlight(cause);
}
