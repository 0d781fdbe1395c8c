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
// A transaction left open (the status in the reset's ReadyForQuery) or any
// failure of the reset means the connection is not reused (the caller
// discards it). The statements are prepared once per connection and sent
// behind the request's last statement (wire-connection.ts).
/** The statements that undo what a request may have changed, in order. */
export const RESET_COMMANDS = ["RESET ALL", "SET SESSION AUTHORIZATION DEFAULT", "CLOSE ALL", "UNLISTEN *", "DISCARD TEMP", "DISCARD SEQUENCES"] as const;

/**
 * The reset's last statement: advisory locks, and the names of statements
 * prepared in SQL (deallocated by name). Schema-qualified: RESET ALL restores
 * the role's own search_path, which the role may have set (ALTER ROLE … SET)
 * to put a schema of its own first.
 */
export const RESET_CHECK = "SELECT pg_catalog.pg_advisory_unlock_all(), ARRAY(SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql) AS prepared";
