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
//   refused): listed here, deallocated by name;
// - random()'s seed (setseed(), which DISCARD ALL keeps): a new one each time,
//   drawn by the check below.
// A transaction left open (the status in the reset's ReadyForQuery), any
// failure of the reset, or a statement the gateway named that is no longer
// its own (a DO block can DEALLOCATE and PREPARE under any name, the reset's
// included) means the connection is not reused (the caller discards it). The
// commands are prepared once per connection, the check is the unnamed
// statement, and all are sent behind the request's last statement
// (wire-connection.ts).
/** The statements that undo what a request may have changed, in order. */
export const RESET_COMMANDS = ["RESET ALL", "SET SESSION AUTHORIZATION DEFAULT", "CLOSE ALL", "UNLISTEN *", "DISCARD TEMP", "DISCARD SEQUENCES"] as const;

/**
 * The reset's last statement, the unnamed statement (a caller's SQL can
 * replace any named one, never the unnamed): advisory locks; the names of
 * statements prepared in SQL (deallocated by name); how many statements the
 * protocol named, which must be the gateway's count (fewer: a caller
 * deallocated or replaced one of the gateway's, and the connection is not
 * reused); and a new seed for random(), from PostgreSQL's strong source
 * (gen_random_uuid(), hashed to 64 bits, scaled into setseed()'s [-1, 1)):
 * what a caller's setseed() left, which even DISCARD ALL keeps, is not the
 * next caller's sequence. Without parameters, so that PostgreSQL keeps its
 * plan (an unnamed statement with parameters is planned again at every
 * Bind), and the same bytes every time. Schema-qualified throughout, with
 * no operator: RESET ALL restores the role's own search_path, which the
 * role may have set (ALTER ROLE … SET) to put a schema of its own first.
 */
export const RESET_CHECK =
  "SELECT pg_catalog.pg_advisory_unlock_all(), pg_catalog.array_agg(name) FILTER (WHERE from_sql) AS prepared, " +
  "pg_catalog.count(*) FILTER (WHERE NOT from_sql) AS named, " +
  "pg_catalog.setseed(pg_catalog.float8div(CAST(pg_catalog.hashtextextended(CAST(pg_catalog.gen_random_uuid() AS pg_catalog.text), 0) AS pg_catalog.float8), CAST('9223372036854775808' AS pg_catalog.float8))) " +
  "FROM pg_catalog.pg_prepared_statement()";
