// HBAGATE_PIPELINE_DEPTH: once a pool's connections are busy, statements join
// their pipelines instead of waiting. Against PostgreSQL: the bound, batches
// still getting a connection of their own, and cancels (a response limit, a
// caller gone) never ending a statement queued behind the cancelled one.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GatewayError } from "../../lib/errors.ts";
import { createApp } from "../../lib/http/app.ts";
import { runBatch, runSingle, type ResponseLimits } from "../../lib/query/run.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testDeps, testPools } from "./deps.ts";

describe("pipelined statements", () => {
  let cluster: Cluster;
  const opened: Pools[] = [];
  const limits: ResponseLimits = { maxRows: 10, maxBytes: 1 << 20 };

  before(async () => {
    cluster = await startCluster();
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    await Promise.all(opened.map((p) => p.close()));
    await cluster?.stop();
  });

  const pipelined = (depth: number, overrides: Parameters<typeof testPools>[1] = {}) => {
    const pools = testPools(cluster.port, { max: 1, pipelineDepth: depth, statementTimeout: 20_000, maxQueue: 0, ...overrides });
    opened.push(pools);
    return pools;
  };
  const single = (pools: Pools, query: string, params: unknown[] = [], disconnect?: () => AbortSignal) =>
    pools.use("postgres", "postgres", undefined, {}, (session) => runSingle(session, { query, params }, "json", limits, disconnect));
  const outcome = <T>(p: Promise<T>) => p.then((v) => ({ ok: v }), (e: unknown) => ({ error: e instanceof GatewayError ? e.code : String(e) }));

  test("callers past the pool's connections join its pipeline rather than queue: all answered, one connection", async () => {
    const pools = pipelined(8);
    const backends = async () => (await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and usename = 'postgres'`)[0]!.n;
    const before = await backends();
    // maxQueue 0: with one connection and no pipeline, seven of these would be refused (53300).
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => single(pools, "select pg_sleep(0.02), $1::int as i", [i])));
    assert.deepEqual(results.map((r) => r.rows[0]!.i), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal((await backends()) - before, 1, "one upstream connection served them all");
    const refused = await outcome(Promise.all(Array.from({ length: 9 }, () => single(pools, "select 1"))));
    assert.deepEqual(refused, { error: "53300" }, "the ninth is past the depth and the queue");
  });

  test("a batch gets a connection of its own while single statements keep its pipeline full", { timeout: 20_000 }, async () => {
    const pools = pipelined(8, { maxQueue: 100 });
    let running = true;
    const stopAt = Date.now() + 3000;
    const load = Array.from({ length: 12 }, async () => {
      let n = 0;
      while (running && Date.now() < stopAt) {
        await single(pools, "select pg_sleep(0.003), 1 as n");
        n++;
      }
      return n;
    });
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const batch = await pools.use("postgres", "postgres", undefined, {}, (session) =>
      runBatch(session, [{ query: "select txid_current() as a" }, { query: "select pg_sleep(0.01), txid_current() as b" }], {}, "json", limits),
    );
    const took = Date.now() - started;
    running = false;
    const counts = await Promise.all(load);
    assert.equal(batch[0]!.rows[0]!.a, batch[1]!.rows[0]!.b, "both statements in one transaction");
    assert.ok(took < 1000, `the batch waited ${took} ms`);
    assert.ok(counts.every((n) => n > 0), "the single statements ran meanwhile");
  });

  test("a cancel for the statement ahead in the pipeline never ends the ones behind it", { timeout: 60_000 }, async () => {
    const pools = pipelined(4);
    const app = createApp(testDeps(pools, "host all all all trust\n", { responseLimits: limits }));
    const ask = async (query: string) => {
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: "Basic " + btoa("postgres:") }, body: JSON.stringify({ query }) });
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
    };
    const victims: string[] = [];
    for (let round = 0; round < 40; round++) {
      // Sent together on one connection: the first overruns the limit and PostgreSQL finishes it
      // at once, so its cancel tends to arrive while the second or third runs.
      const [over, ...behind] = await Promise.all([ask("select g from generate_series(1, 40) g"), ask("select pg_sleep(0.003), 2 as n"), ask("select pg_sleep(0.003), 3 as n")]);
      assert.deepEqual([over!.status, over!.code], [507, "53400"]);
      for (const r of behind) if (r.status !== 200) victims.push(`round ${round}: ${r.status} ${r.code}`);
    }
    assert.deepEqual(victims, []);
  });

  test("a caller gone while its statement waits in the pipeline: the statements around it still answer", { timeout: 20_000 }, async () => {
    const pools = pipelined(3);
    for (let round = 0; round < 5; round++) {
      const gone = new AbortController();
      const ahead = outcome(single(pools, "select pg_sleep(0.1), 'ahead' as s"));
      const leaving = outcome(single(pools, "select 'leaving' as s", [], () => gone.signal));
      const behind = outcome(single(pools, "select 'behind' as s"));
      setTimeout(() => gone.abort(), 40); // past the point where the statement watches for disconnects
      const [a, l, b] = await Promise.all([ahead, leaving, behind]);
      assert.ok("ok" in a, `round ${round}: ${JSON.stringify([a, l, b])}`);
      assert.ok("ok" in b, `round ${round}: the statement behind the abandoned one answered (${JSON.stringify(b)})`);
      // The abandoned statement either ran before its cancel arrived or was cancelled.
      assert.ok("ok" in l || l.error === "57014", JSON.stringify(l));
    }
  });
});
