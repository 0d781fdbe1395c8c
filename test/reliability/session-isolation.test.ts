// One caller never reaches another through a pooled session: whatever a
// request leaves on its connection is undone before the next request gets it.
// One connection per pool (HBAGATE_POOL_MAX=1, the Lambda default), so the
// next request always meets the same backend. Against a real PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";
import { query } from "../harness/wire.ts";

/** Everything a request could see of what an earlier one left behind. */
const FINGERPRINT = `select pg_backend_pid() as pid,
  current_setting('search_path') as search_path, current_user::text as current_user, session_user::text as session_user,
  coalesce(current_setting('x.secret', true), '') as secret, current_setting('statement_timeout') as statement_timeout,
  current_setting('default_transaction_read_only') as read_only,
  (select count(*)::int from pg_class where relnamespace = pg_my_temp_schema()) as temp_objects,
  (select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as advisory_locks,
  (select count(*)::int from pg_listening_channels()) as listening,
  (select count(*)::int from pg_prepared_statements where from_sql) as sql_prepared,
  (select count(*)::int from pg_cursors) as cursors`;

/** What one caller may do to its session; each entry a request body. */
const CHANGES: Record<string, unknown> = {
  searchPath: { query: "set search_path = evil, public" },
  role: { query: "set role helper" },
  sessionAuthorization: { query: "set session authorization helper" },
  setConfig: { query: "select set_config('x.secret', 'token-123', false)" },
  statementTimeout: { query: "set statement_timeout = 0" },
  tinyTimeout: { query: "set statement_timeout = 1" },
  readOnly: { query: "set default_transaction_read_only = on" },
  tempTable: { query: "create temp table items (id int, note text)" },
  tempTableInFunction: { query: "do $$ begin execute 'create temp table shadow (x int)'; end $$" },
  advisoryLock: { query: "select pg_advisory_lock(4242)" },
  listen: { query: "do $$ begin execute 'listen secrets'; end $$" },
  prepare: { query: "do $$ begin execute 'prepare leaked as select ''token-456'''; end $$" },
  cursorWithHold: { queries: [{ query: "declare held cursor with hold for select 'token-789'" }] },
  setInBatch: { queries: [{ query: "set search_path = evil" }, { query: "select set_config('x.secret', 'batch', false)" }] },
  failingStatementAfterSet: { queries: [{ query: "select set_config('x.secret', 'then-fail', false)" }, { query: "select 1/0" }] },
  sequence: { query: "insert into numbered default values" },
};

describe("session isolation between callers of one role", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;
  let baseline: Record<string, unknown>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role app login superuser;
      create role helper;
      grant helper to app;
      create schema evil;
      create table items (id int);
      insert into items values (1);
      create table numbered (id serial primary key);
    `);
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port, { max: 1 });
    app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "app" } });
    baseline = await fingerprint();
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const post = (body: unknown) => postSql(app, body);
  async function fingerprint(): Promise<Record<string, unknown>> {
    const r = await post({ query: FINGERPRINT });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.rows[0];
  }

  test("the baseline is a clean session on one backend", () => {
    assert.equal(baseline.current_user, "app");
    assert.equal(baseline.secret, "");
    assert.equal(baseline.statement_timeout, "2s");
  });

  for (const [name, body] of Object.entries(CHANGES)) {
    test(`${name}: the next request finds the session as it was`, async () => {
      const r = await post(body);
      assert.ok(r.status === 200 || name === "failingStatementAfterSet", `${name}: ${JSON.stringify(r.body)}`);
      const next = await fingerprint();
      // Same backend, unless a reset failed and the connection was replaced: that is clean too.
      assert.deepEqual({ ...next, pid: 0 }, { ...baseline, pid: 0 }, name);
    });
  }

  test("a temporary table never shadows the real one for the next caller", async () => {
    const r1 = await post({ queries: [{ query: "create temp table items (id int)" }, { query: "insert into items values (7), (8), (9)" }] });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    const r = await post({ query: "select count(*)::int as n from items" });
    assert.deepEqual(r.body.rows, [{ n: 1 }], "the real table (one row), not the first caller's three");
  });

  test("a connection left inside a transaction is never handed out again", async () => {
    const before = (await fingerprint()).pid;
    // Only the gateway's own code could leave one open (callers' BEGINs are refused): do it directly.
    await pools.use("postgres", "app", undefined, {}, (session) => session.lease((conn) => query(conn, "begin")));
    const after = await fingerprint();
    assert.notEqual(after.pid, before, "a new connection");
    assert.deepEqual({ ...after, pid: 0 }, { ...baseline, pid: 0 });
  });

  test("another session can take an advisory lock the last request took", async () => {
    assert.equal((await post(CHANGES.advisoryLock)).status, 200);
    const [row] = await cluster.sql`select pg_try_advisory_lock(4242) as got`;
    assert.equal(row!.got, true);
    await cluster.sql`select pg_advisory_unlock(4242)`;
  });

  test("lastval() of another caller's insert is not there to read", async () => {
    assert.equal((await post(CHANGES.sequence)).status, 200);
    const r = await post({ query: "select lastval()" });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, "55000");
  });

  test("property: any sequence of changes, each followed by another caller's look, shows nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...Object.keys(CHANGES)), { minLength: 1, maxLength: 6 }), async (names) => {
        for (const name of names) {
          await post(CHANGES[name]);
          const next = await fingerprint();
          assert.deepEqual({ ...next, pid: 0 }, { ...baseline, pid: 0 }, `after ${names.join(", ")}`);
        }
      }),
      { numRuns: 25 },
    );
  });
});
