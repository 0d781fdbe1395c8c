// Statements that would leave the shared session somewhere the next caller
// finds it, or enter COPY, are refused before anything is sent; the process
// survives what used to end it. Against a real PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import { leadingKeyword } from "../../lib/query/refused-statements.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";

test("the first keyword is read as PostgreSQL's lexer reads it", () => {
  assert.equal(leadingKeyword("  COPY x from stdin"), "copy");
  assert.equal(leadingKeyword("/* a /* nested */ comment */\n-- line\r\n\tBeGiN"), "begin");
  assert.equal(leadingKeyword("\v\fcopy"), "copy");
  assert.equal(leadingKeyword('"copy" x'), "");
  assert.equal(leadingKeyword("select 1"), "select");
  assert.equal(leadingKeyword("/* unterminated"), "");
  assert.equal(leadingKeyword("copy_table"), "copy_table");
  // Empty statements before it are dropped by PostgreSQL's grammar: ";begin" is BEGIN.
  assert.equal(leadingKeyword(";begin"), "begin");
  assert.equal(leadingKeyword(" ; /* c */ ;\n; COPY t from stdin"), "copy");
});

describe("refused statements", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;
  const logs: LogEvent[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role nobody_much login; create table items (id int); grant select, insert on items to nobody_much");
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    // One connection, as on Lambda: whatever one request leaves, the next one meets.
    pools = testPools(cluster.port, { max: 1 });
    app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "nobody_much" }, maxBodyBytes: 8 << 20, log: (e) => logs.push(e) });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const post = (body: unknown) => postSql(app, body);

  test("COPY in either direction is refused (0A000) and nothing is sent; the process survives the backend's end", async () => {
    assert.equal((await post({ query: "create temp table x(a int)" })).status, 200);
    for (const query of ["copy x from stdin", "COPY x TO STDOUT", "/* hi */ copy (select 1) to stdout", "copy x from '/etc/passwd'", ";copy x from stdin", " ; ;copy (select 1) to stdout"]) {
      const r = await post({ query });
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.code, "0A000", query);
    }
    for (let i = 0; i < 10; i++) assert.equal((await post({ query: "copy x from stdin" })).status, 400);
    await cluster.sql`select pg_terminate_backend(pid) from pg_stat_activity where usename = 'nobody_much'`;
    // The pool answers again (its dead connection replaced: the first request may meet it, 08007,
    // and the next may wait for a new one); nothing was left waiting for COPY data.
    let r = await post({ query: "select 1 as one" });
    for (let i = 0; i < 3 && r.status !== 200; i++) r = await post({ query: "select 1 as one" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const copies = await cluster.sql`select count(*)::int as n from pg_stat_activity where query ilike 'copy%'`;
    assert.equal(copies[0]!.n, 0);
  });

  test("transaction control on its own is refused, so the next caller's write commits", async () => {
    for (const query of ["begin", "START TRANSACTION", "commit", "end", "rollback", "abort", "savepoint s", "release s", "prepare transaction 'x'", ";begin", ";;rollback"]) {
      const r = await post({ query });
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.code, "0A000", query);
    }
    assert.equal((await post({ query: "insert into items values (1)" })).status, 200);
    // Seen from another session: committed, not waiting in someone's open transaction.
    const [row] = await cluster.sql`select count(*)::int as n from items where id = 1`;
    assert.equal(row!.n, 1);
  });

  test("inside a batch, transaction control and session-level statements are refused before the batch starts", async () => {
    const r = await post({ queries: [{ query: "insert into items values (2)" }, { query: ";commit" }, { query: "insert into items values (3)" }] });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, "0A000");
    const [row] = await cluster.sql`select count(*)::int as n from items where id in (2, 3)`;
    assert.equal(row!.n, 0, "nothing of the batch ran");
  });

  test("PREPARE, EXECUTE, DEALLOCATE, DISCARD and LISTEN are refused", async () => {
    for (const query of ["prepare p as select 1", "execute p", "deallocate all", "discard all", "listen chan", ";prepare p as select 1", ";discard all", "; listen chan"]) {
      const r = await post({ query });
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.code, "0A000", query);
    }
    const [row] = await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = 'nobody_much' and query ilike 'listen%'`;
    assert.equal(row!.n, 0);
  });

  test("parameters past the driver's limit are a 400 with a clear message, not a 500", async () => {
    for (const count of [65534, 65535, 70000]) {
      const params = Array.from({ length: count }, () => 1);
      const r = await post({ query: "select 1", params });
      assert.equal(r.status, 400, String(count));
      assert.equal(r.body.error.code, "22023");
      assert.match(r.body.error.message, /at most 65533 parameters/);
    }
    const params = Array.from({ length: 65533 }, (_, i) => i);
    const query = `select ${params.map((_, i) => `$${i + 1}::int`).slice(0, 3).join(" + ")} as s, ${65533} as n`;
    const r = await post({ query: query + " where $65533::int is not null" + params.slice(3, 65532).map((_, i) => ` and $${i + 4}::int is not null`).join(""), params });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
  });

  test("an internal error's log line keeps its cause", async () => {
    const down = testPools(1, { connectTimeout: 1 });
    const other = testApp(down, "host all all all trust\n", { caller: { anonymousUser: "x" }, log: (e) => logs.push(e) });
    const res = await other.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json" }, body: '{"query":"select 1"}' });
    assert.equal(res.status, 503);
    const line = logs.findLast((e) => e.msg === "request failed");
    assert.match(String(line?.cause), /ECONNREFUSED/);
    await down.close();
  });
});
