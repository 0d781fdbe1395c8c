// Prepared statements against a real PostgreSQL: a statement seen twice is
// prepared on the connection, one-off statements and batches never are, the
// number per pool is bounded (0: none at all), and DDL that changes a
// prepared statement's result is absorbed (postgres.js re-prepares and retries).
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadSettings } from "../../lib/config/settings.ts";
import { assembleGateway } from "../../lib/gateway/assemble.ts";
import { nodePlatform } from "../../lib/node/platform.ts";
import { PreparedStatements } from "../../lib/upstream/prepared-statements.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "./deps.ts";
import { testApp } from "../harness/gateway.ts";

/** Callers' prepared statements: the gateway's reset prepares its own (hbagate_reset_N) once per connection. */
const OURS_EXCLUDED = "select statement from pg_prepared_statements where left(name, 14) <> 'hbagate_reset_' order by statement";

describe("the prepare policy", () => {
  test("second sighting prepares; the bound and the length limit hold", () => {
    const p = new PreparedStatements(2);
    assert.equal(p.shouldPrepare("select 1"), false, "first sighting");
    assert.equal(p.shouldPrepare("select 1"), true, "second sighting");
    assert.equal(p.shouldPrepare("select 1"), true, "stays prepared");
    assert.equal(p.shouldPrepare("select 2"), false);
    assert.equal(p.shouldPrepare("select 2"), true);
    assert.equal(p.size, 2);
    assert.equal(p.shouldPrepare("select 3"), false);
    assert.equal(p.shouldPrepare("select 3"), false, "the pool is full");
    assert.equal(p.size, 2);
    const long = "select " + "1".repeat(20_000);
    const q = new PreparedStatements(10);
    q.shouldPrepare(long);
    assert.equal(q.shouldPrepare(long), false, "too long to prepare");
    // With 0 the same statement, seen often enough to be prepared otherwise, never is.
    const off = new PreparedStatements(0);
    for (let i = 0; i < 3; i++) assert.equal(off.shouldPrepare("select 1"), false, `sighting ${i + 1} with 0`);
    assert.equal(off.size, 0);
  });

  test("the statements' text is bounded in bytes as well as in count", () => {
    // Every request pays for this text in the session reset's check, so the pool stops preparing
    // once the next statement would take it past the bound, counted in UTF-8 as the server keeps it.
    const p = new PreparedStatements(100, 100);
    const sixty = "select '" + "a".repeat(51) + "'";
    assert.equal(sixty.length, 60);
    p.shouldPrepare(sixty);
    assert.equal(p.shouldPrepare(sixty), true, "60 of 100 bytes");
    const fifty = "select '" + "b".repeat(41) + "'";
    p.shouldPrepare(fifty);
    assert.equal(p.shouldPrepare(fifty), false, "60 + 50 > 100");
    // 27 UTF-16 units but 45 UTF-8 bytes: past the 40 left, counted as the server keeps the text.
    const accented = "select '" + "é".repeat(18) + "'";
    assert.equal(accented.length, 27);
    p.shouldPrepare(accented);
    assert.equal(p.shouldPrepare(accented), false, "60 + 45 > 100");
    const forty = "select '" + "c".repeat(31) + "'";
    p.shouldPrepare(forty);
    assert.equal(p.shouldPrepare(forty), true, "60 + 40 = 100");
    assert.equal(p.size, 2);
    const tiny = "select 1";
    p.shouldPrepare(tiny);
    assert.equal(p.shouldPrepare(tiny), false, "the budget is spent");
  });

  test("one-off statements do not crowd out repeated ones", () => {
    const p = new PreparedStatements(5);
    for (let i = 0; i < 5000; i++) p.shouldPrepare(`select ${i}`);
    assert.equal(p.size, 0);
    p.shouldPrepare("select $1::int");
    assert.equal(p.shouldPrepare("select $1::int"), true);
  });
});

describe("prepared statements upstream", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role prep login; create table things (id int); insert into things values (1); grant all on things to prep");
    await cluster.writeHba("host all prep 127.0.0.1/32 trust\n", { reload: true });
    // One connection, so every statement shares the session whose prepared statements we read.
    pools = testPools(cluster.port, { max: 1, preparedStatements: 3 });
    app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "prep" } });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  async function run(body: unknown) {
    const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, any>;
    assert.equal(res.status, 200, JSON.stringify(json));
    return json;
  }
  // The session reset's own statements are prepared once per connection; only callers' statements count.
  const prepared = async () =>
    ((await run({ query: OURS_EXCLUDED })).rows as { statement: string }[]).map((r) => r.statement);

  test("a repeated statement is prepared, a one-off is not", async () => {
    for (let i = 0; i < 3; i++) assert.deepEqual((await run({ query: "select $1::int as n", params: [i] })).rows, [{ n: i }]);
    await run({ query: "select 42 as once" });
    assert.deepEqual(await prepared(), ["select $1::int as n"]);
  });

  test("statements inside a batch are never prepared", async () => {
    const batch = { queries: [{ query: "select 7 as in_batch" }, { query: "select 7 as in_batch" }] };
    await run(batch);
    await run(batch);
    assert.ok(!(await prepared()).includes("select 7 as in_batch"));
  });

  test("no more than the bound are prepared on a connection", async () => {
    for (const q of ["select 'a' as x", "select 'b' as x", "select 'c' as x", "select 'd' as x"]) {
      await run({ query: q });
      await run({ query: q });
    }
    // Already prepared: "select $1::int as n", then the pg_prepared_statements query (now seen twice).
    const names = await prepared();
    assert.equal(names.length, 3, JSON.stringify(names));
    assert.ok(names.includes("select 'a' as x") && !names.includes("select 'b' as x"), JSON.stringify(names));
  });

  test("HBAGATE_PREPARED_STATEMENTS=0 turns it off, and HBAGATE_PREPARED_STATEMENT_BYTES bounds the text: a statement seen three times stays unprepared", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hbagate-prepared-"));
    writeFileSync(join(dir, "pg_hba.conf"), "host all prep 127.0.0.1/32 trust\n");
    // A gateway assembled from the environment, so the setting is followed from where operators write it.
    const preparedWith = async (env: Record<string, string>) => {
      const settings = loadSettings({
        HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
        HBAGATE_UPSTREAM_HOST: "127.0.0.1",
        HBAGATE_UPSTREAM_PORT: String(cluster.port),
        HBAGATE_ANONYMOUS_USER: "prep",
        HBAGATE_POOL_MAX: "1",
        ...env,
      });
      const platform = nodePlatform(settings, { peer: () => ({ transport: "host", address: "127.0.0.1", encrypted: false }) });
      const gateway = await assembleGateway(settings, () => {}, platform, { defaultHba: undefined });
      assert.ok(gateway);
      try {
        for (let i = 0; i < 3; i++) {
          const r = await postSql(gateway.app, { query: "select $1::int as n", params: [i] });
          assert.deepEqual([r.status, r.body.rows], [200, [{ n: i }]], JSON.stringify(r.body));
        }
        const r = await postSql(gateway.app, { query: OURS_EXCLUDED });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return (r.body.rows as { statement: string }[]).map((row) => row.statement);
      } finally {
        await gateway.close();
      }
    };
    assert.deepEqual(await preparedWith({}), ["select $1::int as n"], "prepared by default");
    assert.deepEqual(await preparedWith({ HBAGATE_PREPARED_STATEMENTS: "0" }), [], "prepared with 0");
    // "select $1::int as n" is 19 bytes: a pool allowed 18 runs it unprepared, one allowed 19 prepares it.
    assert.deepEqual(await preparedWith({ HBAGATE_PREPARED_STATEMENT_BYTES: "18" }), [], "prepared past HBAGATE_PREPARED_STATEMENT_BYTES");
    assert.deepEqual(await preparedWith({ HBAGATE_PREPARED_STATEMENT_BYTES: "19" }), ["select $1::int as n"], "prepared within HBAGATE_PREPARED_STATEMENT_BYTES");
  });

  test("DDL that changes a prepared statement's result is absorbed", async () => {
    // "select * from things" cannot be prepared any more (the pool is full): use a new pool.
    const fresh = testPools(cluster.port, { max: 1 });
    const other = testApp(fresh, "host all all all trust\n", { caller: { anonymousUser: "prep" } });
    const ask = async () => (await (await other.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json" }, body: '{"query":"select * from things"}' })).json()) as Record<string, any>;
    await ask();
    assert.deepEqual((await ask()).rows, [{ id: 1 }]);
    await cluster.sql.unsafe("alter table things add column label text default 'new'");
    const after = await ask();
    assert.deepEqual(after.rows, [{ id: 1, label: "new" }], JSON.stringify(after));
    await fresh.close();
  });

  test("a statement prepared again under DDL, after the session reset went out behind it, is reset too", async () => {
    // The reset leaves right behind the statement; the statement, refused for its stale plan, is
    // prepared again and run after that reset: what it does to the session must not reach the next caller.
    await cluster.sql.unsafe("create table if not exists shapes (id int); insert into shapes values (1); grant all on shapes to prep");
    const fresh = testPools(cluster.port, { max: 1, preparedStatements: 10 });
    try {
      const other = testApp(fresh, "host all all all trust\n", { caller: { anonymousUser: "prep" } });
      const ask = async (query: string) => (await (await other.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query }) })).json()) as Record<string, any>;
      const leaky = "select set_config('app.left', 'behind', false) as s, * from shapes";
      await ask(leaky);
      await ask(leaky);
      await ask("select 1");
      await cluster.sql.unsafe("alter table shapes add column label text default 'new'");
      const retried = await ask(leaky);
      assert.deepEqual(retried.rows, [{ s: "behind", id: 1, label: "new" }], JSON.stringify(retried));
      const next = await ask("select current_setting('app.left', true) as left");
      assert.deepEqual(next.rows, [{ left: "" }], "the retried statement's setting did not outlive its request");
    } finally {
      await fresh.close();
    }
  });
});
