// A bounded soak: 3,000 mixed requests (single statements, batches, SQL
// errors, authentication failures) at 60 concurrent, over a real socket. The
// upstream connections stay within the configured bounds and memory is flat:
// what is live once the last 2,000 requests are done (none in flight, after
// collection) is within 700 bytes a request of what was live after the first
// 1,000, so a leak of 1 KB a request fails.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { nodePeer, startListeners, type Listening } from "../../lib/node/listeners.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const TOTAL = 3000;
const WARM_UP = 1000;
/** Bytes of live heap a request may leave behind, on average: a 1 KB leak is well past it. */
const MAX_GROWTH_PER_REQUEST = 700;

// A real collection before each heap sample, so garbage does not read as growth.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const CONCURRENCY = 60;

describe("soak", () => {
  let cluster: Cluster;
  let pools: Pools;
  let listening: Listening;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role s1 login; create role s2 login password 'pw2'; create table t (id serial primary key, v int); grant all on t, t_id_seq to s1, s2");
    await cluster.writeHba("host all s1 127.0.0.1/32 trust\nhost all s2 127.0.0.1/32 scram-sha-256\n", { reload: true });
    pools = testPools(cluster.port, { max: 4, maxTotal: 8, queueTimeoutMs: 10_000, maxQueue: 1000, statementTimeout: 5000 });
    const app = testApp(pools, "host all s1 all trust\nhost all s2 all scram-sha-256\n", { peer: nodePeer, maxBodyBytes: 1 << 16 });
    listening = await startListeners(app.fetch, { host: "127.0.0.1", port: 0, unixSocket: undefined, tls: undefined });
  });
  after(async () => {
    await listening?.close();
    await pools?.close();
    await cluster?.stop();
  });

  const KINDS = [
    { body: { query: "select $1::int as n", params: [7] }, user: basic("s1"), expect: 200 },
    { body: { queries: [{ query: "insert into t (v) values ($1)", params: [1] }, { query: "select count(*) from t" }] }, user: basic("s1"), expect: 200 },
    { body: { query: "select * from missing_table" }, user: basic("s1"), expect: 400 },
    { body: { query: "select 1" }, user: basic("s2", "wrong"), expect: 401 },
    { body: { query: "select 1" }, user: basic("s2", "pw2"), expect: 200 },
  ] as const;

  test(`${TOTAL} mixed requests at ${CONCURRENCY} concurrent`, async (t) => {
    const base = `${listening.urls[0]}/v1/postgres/sql`;
    let next = 0;
    let peak = 0;
    const heap: number[] = [];
    const unexpected: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [row] = await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where usename in ('s1', 's2')`;
        peak = Math.max(peak, row?.n ?? 0);
        await new Promise((r) => setTimeout(r, 20)); // the sampling interval, not a wait for anything
      }
    })();
    // Quiet heap: no request in flight, sockets settled, collected until it stops shrinking.
    const quietHeap = async () => {
      // A quiet period for the measurement (timers and sockets of the last requests settle), not a wait for one event.
      await new Promise((r) => setTimeout(r, 200));
      let best = Infinity;
      for (let i = 0; i < 5; i++) {
        gc();
        best = Math.min(best, process.memoryUsage().heapUsed);
        await new Promise((r) => setImmediate(r));
      }
      return best;
    };
    const worker = (end: number) => async () => {
      for (;;) {
        const i = next++;
        if (i >= end) return;
        const kind = KINDS[i % KINDS.length]!;
        const res = await fetch(base, { method: "POST", headers: { "content-type": "application/json", authorization: kind.user }, body: JSON.stringify(kind.body) });
        await res.arrayBuffer();
        if (res.status !== kind.expect) unexpected.push(`${i}: ${res.status} (expected ${kind.expect})`);
      }
    };
    // Warm-up (pools, caches, JIT) in the first third; then two measured thirds, each ending at a
    // quiet heap. A leak grows both; a one-off allocation (a connection replaced, a buffer that grew
    // once) shows in one of them only, so the smaller growth is the one held to the bound.
    await Promise.all(Array.from({ length: CONCURRENCY }, worker(WARM_UP)));
    heap.push(await quietHeap());
    const middle = WARM_UP + (TOTAL - WARM_UP) / 2;
    await Promise.all(Array.from({ length: CONCURRENCY }, worker(middle)));
    heap.push(await quietHeap());
    await Promise.all(Array.from({ length: CONCURRENCY }, worker(TOTAL)));
    heap.push(await quietHeap());
    sampling = false;
    await sampler;

    assert.deepEqual(unexpected.slice(0, 5), []);
    assert.ok(peak <= 8, `peak ${peak} upstream connections (bound 8)`);
    const [warm, mid, last] = heap as [number, number, number];
    const half = (TOTAL - WARM_UP) / 2;
    const perRequest = Math.min(mid - warm, last - mid) / half;
    t.diagnostic(
      `quiet heap (MiB): after warm-up ${(warm / 2 ** 20).toFixed(2)}, midway ${(mid / 2 ** 20).toFixed(2)}, at the end ${(last / 2 ** 20).toFixed(2)}: ${perRequest.toFixed(0)} bytes a request in the smaller half; peak upstream connections ${peak}`,
    );
    assert.ok(perRequest < MAX_GROWTH_PER_REQUEST, `heap grew ${perRequest.toFixed(0)} bytes a request in both halves (${warm}, ${mid}, ${last}), bound ${MAX_GROWTH_PER_REQUEST}`);
  });
});
