// What a request may have left on its connection, undone before the next
// request gets it. Sessions are shared by every caller of a role, and a
// statement can change its session through a function call whose command tag
// says only SELECT (set_config, pg_advisory_lock, EXECUTE 'LISTEN …' in a DO
// block), so the reset runs after every request rather than when a tag hints
// at a change. What it covers (PostgreSQL 18, DISCARD ALL's list, less
// DEALLOCATE ALL, which would drop the gateway's own prepared statements):
// - settings, including set_config(…, false), `SET ROLE`, statement_timeout:
//   RESET ALL (back to the values the gateway's login set);
// - SET SESSION AUTHORIZATION: SET SESSION AUTHORIZATION DEFAULT;
// - cursors WITH HOLD: CLOSE ALL; listeners: UNLISTEN *;
// - temporary tables (which shadow real ones through pg_temp): DISCARD TEMP;
// - currval/lastval: DISCARD SEQUENCES; advisory locks: pg_advisory_unlock_all();
// - statements prepared in SQL (from a DO block; the PREPARE keyword itself is
//   refused): listed here, deallocated by name.
// A transaction left open (now() older than this message) or any failure of
// the reset means the connection is not reused (the caller discards it).
import type postgres from "postgres";
import { connectionClosed } from "./errors.ts";

/** The statements that undo what a request may have changed, in order. */
export const RESET_COMMANDS = ["RESET ALL", "SET SESSION AUTHORIZATION DEFAULT", "CLOSE ALL", "UNLISTEN *", "DISCARD TEMP", "DISCARD SEQUENCES"] as const;

// Schema-qualified, the operator too: RESET ALL restores the role's own search_path, which the
// role may have set (ALTER ROLE … SET) to put a schema of its own, with its own "=", first.
const UNLOCK = "pg_catalog.pg_advisory_unlock_all()";
const PREPARED_IN_SQL = "ARRAY(SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql) AS prepared";

/**
 * The reset's last statement where the transaction status comes with each
 * ReadyForQuery (wire-connection.ts): advisory locks, and the names prepared in SQL.
 */
export const RESET_CHECK = `SELECT ${UNLOCK}, ${PREPARED_IN_SQL}`;

/** The one statement text the gateway adds after every request (also what an audit of the server log expects). */
export const RESET = [
  ...RESET_COMMANDS,
  // now() is the transaction's start: equal to this statement's only when no transaction was left open.
  `SELECT ${UNLOCK}, pg_catalog.now() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp() AS idle, ${PREPARED_IN_SQL}`,
].join("; ");

const simple = { simple: true } as postgres.UnsafeQueryOptions;

/**
 * How the reset left the connection: as a new request should find it
 * ("clean"), closed by postgres.js (the connection was lost), or "dirty"
 * (a transaction still open, a statement of the reset failing).
 */
export type ResetOutcome = "clean" | "dirty" | "closed";

export async function resetSession(conn: postgres.Sql): Promise<ResetOutcome> {
  try {
    const results = (await conn.unsafe(RESET, [], simple)) as unknown as postgres.Row[][];
    const last = results[results.length - 1]?.[0] as { idle?: boolean; prepared?: string[] } | undefined;
    if (last?.idle !== true) return "dirty";
    for (const name of last.prepared ?? []) {
      await conn.unsafe(`DEALLOCATE "${name.replaceAll('"', '""')}"`, [], simple);
    }
    return "clean";
  } catch (err) {
    return connectionClosed(err) ? "closed" : "dirty";
  }
}
