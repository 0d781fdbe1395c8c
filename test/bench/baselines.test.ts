// The benchmark's baselines and load generator do what the report says they
// do, against a real PostgreSQL: a broken baseline would make every ratio
// in bench/results a lie without anything failing.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runJson, startProcessMatching } from "../../bench/processes.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const node = (script: string, ...args: string[]) => [process.execPath, "--import", "tsx", script, ...args];

describe("benchmark baselines", () => {
  let cluster: Cluster;
  let pg: Record<string, string>;
  const children: ChildProcess[] = [];
  const start = async (kind: string, env: Record<string, string> = {}) => {
    // Port 0: the server binds whatever port is free and names it in its ready line.
    const { child, ready } = await startProcessMatching(root, node("bench/servers.ts", kind, "0"), { ...pg, ...env }, /ready (\d+)\n/);
    children.push(child);
    return `http://127.0.0.1:${ready[1]}/v1/postgres/sql`;
  };
  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role bench login; create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 100) g; grant select on t to bench");
    await cluster.writeHba("host all bench 127.0.0.1/32 trust\n", { reload: true });
    pg = { PGHOST: "127.0.0.1", PGPORT: String(cluster.port), PGUSER: "bench", POOL_MAX: "2" };
  });
  after(async () => {
    for (const c of children) c.kill();
    await cluster.stop();
  });

  test("the naive bridge, plain and prepared, answers rows and batches from PostgreSQL", async () => {
    for (const kind of ["naive", "naive-prepared"]) {
      const url = await start(kind);
      for (let i = 0; i < 2; i++) {
        const res = await post(url, { query: "select $1::int + 1 as n", params: [i] });
        assert.equal(res.status, 200, kind);
        assert.deepEqual(await res.json(), { rows: [{ n: i + 1 }] }, kind);
      }
      const rows = (await (await post(url, { query: "select id from t where id <= 100" })).json()) as { rows: unknown[] };
      assert.equal(rows.rows.length, 100, kind);
      const batch = (await (await post(url, { queries: [{ query: "select 1 as a" }, { query: "select $1::text as b", params: ["x"] }] })).json()) as unknown;
      assert.deepEqual(batch, { results: [{ rows: [{ a: 1 }] }, { rows: [{ b: "x" }] }] }, kind);
      const bad = await post(url, { query: "select * from nowhere" });
      assert.equal(bad.status, 400, `${kind}: an error is not counted as a 200`);
    }
  });

  test("the prepared bridge prepares its statements and the plain one does not", async () => {
    // One connection, so the statement asked about was run on the session that answers.
    const statement = "select $1::int + 1 as n";
    for (const [kind, prepared] of [["naive", 0], ["naive-prepared", 1]] as const) {
      const url = await start(kind, { POOL_MAX: "1" });
      for (let i = 0; i < 2; i++) assert.equal((await post(url, { query: statement, params: [i] })).status, 200, kind);
      const res = await post(url, { query: "select count(*)::int as n from pg_prepared_statements where statement = $1", params: [statement] });
      assert.deepEqual(await res.json(), { rows: [{ n: prepared }] }, `${kind}: statements prepared on its connection`);
    }
  });

  test("the HTTP floor answers with as many bytes as asked", async () => {
    const url = await start("floor");
    for (const bytes of [100, 5000]) {
      const res = await post(url, { query: "select 1" }, { "x-floor-bytes": String(bytes) });
      assert.equal(res.status, 200);
      assert.equal((await res.arrayBuffer()).byteLength, bytes);
    }
  });

  test("the load generator and the direct driver report what they measured", async () => {
    const url = await start("floor");
    const load = runJson(root, node("bench/load.ts", url, JSON.stringify({ query: "select 1" }), JSON.stringify({}), "1", "2"));
    assert.ok(load.total! > 10, `requests made: ${load.total}`);
    assert.ok(load.rps! > 0);
    assert.equal(load.bad, 0);
    const failing = runJson(root, node("bench/load.ts", url.replace("/v1/postgres/sql", "/nowhere"), "{}", "{}", "1", "2"));
    assert.equal(failing.bad, failing.total, "every non-200 is counted as bad");
    const direct = runJson(root, node("bench/direct.ts", "select $1::int as n", "[1]", "1", "2", "true"), pg);
    assert.ok(direct.rps! > 10, `direct driver: ${direct.rps} statements/s`);
  });
});
