// One caller cannot multiply pools or lift its own time bound: startup
// parameters are settings of the request (one pool per database and role),
// and every request has the gateway's own deadline, whatever the session's
// statement_timeout says. Against a real PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createApp } from "../../lib/http/app.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testDeps, testPools } from "../http/deps.ts";

describe("fair use of the upstream", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof createApp>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port, { max: 1, statementTimeout: 0 });
    app = createApp(testDeps(pools, "host all all all trust\n", { requestTimeoutMs: 500 }));
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  async function neon(query: string, parameters = "") {
    const res = await app.request("/sql", {
      method: "POST",
      headers: { "content-type": "application/json", "neon-connection-string": `postgresql://app@gw.example/postgres${parameters}` },
      body: JSON.stringify({ query, params: [] }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  }

  test("distinct application_name values share one pool; each request sees only its own", async () => {
    for (let i = 0; i < 10; i++) {
      const r = await neon("select current_setting('application_name') as a", `?application_name=app-${i}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.rows, [[`app-${i}`]]);
    }
    assert.equal(pools.size, 1, "one pool for (postgres, app)");
    const plain = await neon("select current_setting('application_name') as a");
    assert.deepEqual(plain.body.rows, [["postgres.js"]], "not the last caller's");
  });

  test("options: -c settings apply to the request; anything else is refused", async () => {
    const r = await neon("select current_setting('search_path') as s", "?options=-c%20search_path%3Dcustom");
    assert.deepEqual(r.body.rows, [["custom"]]);
    assert.notDeepEqual((await neon("select current_setting('search_path') as s")).body.rows, [["custom"]]);
    const bad = await neon("select 1", "?options=--single");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, "08P01");
  });

  test("a lifted statement_timeout does not lift the gateway's deadline", async () => {
    const started = Date.now();
    const res = await app.request("/v1/postgres/sql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Basic " + Buffer.from("app:").toString("base64") },
      body: JSON.stringify({ queries: [{ query: "set local statement_timeout = 0" }, { query: "select pg_sleep(30)" }] }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 504);
    assert.equal(body.error.code, "57014");
    assert.match(body.error.message, /request timeout/);
    assert.ok(Date.now() - started < 10_000, "cancelled near the deadline, not after the sleep");
    // Same for options: statement_timeout=0 set at startup.
    const r = await neon("select pg_sleep(30)", "?options=-c%20statement_timeout%3D0");
    assert.equal(r.status, 504);
    assert.equal(r.body.code, "57014");
    // The one connection is free and clean again.
    const after = await neon("select current_setting('statement_timeout') as t");
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.rows, [["0"]]);
    const [row] = await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = 'app' and query like 'select pg_sleep%' and state = 'active'`;
    assert.equal(row!.n, 0, "nothing still sleeping upstream");
  });
});
