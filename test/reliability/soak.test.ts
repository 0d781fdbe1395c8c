// A bounded soak: 3,000 mixed requests (single statements, batches, SQL
// errors, authentication failures) at 60 concurrent, over a real socket. The
// upstream connections stay within the configured bounds and memory is flat
// between the first and the last third.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createApp } from "../../lib/http/app.ts";
import { nodePeer, startListeners, type Listening } from "../../lib/node/listeners.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testDeps, testPools } from "../http/deps.ts";

const TOTAL = 3000;

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
    const app = createApp(testDeps(pools, "host all s1 all trust\nhost all s2 all scram-sha-256\n", { peer: nodePeer, maxBodyBytes: 1 << 16 }));
    listening = await startListeners(app.fetch, { host: "127.0.0.1", port: 0, unixSocket: undefined, tls: undefined });
  });
  after(async () => {
    await listening?.close();
    await pools?.close();
    await cluster?.stop();
  });

  const auth = (user: string, password = "") => "Basic " + Buffer.from(`${user}:${password}`).toString("base64");
  const KINDS = [
    { body: { query: "select $1::int as n", params: [7] }, user: auth("s1"), expect: 200 },
    { body: { queries: [{ query: "insert into t (v) values ($1)", params: [1] }, { query: "select count(*) from t" }] }, user: auth("s1"), expect: 200 },
    { body: { query: "select * from missing_table" }, user: auth("s1"), expect: 400 },
    { body: { query: "select 1" }, user: auth("s2", "wrong"), expect: 401 },
    { body: { query: "select 1" }, user: auth("s2", "pw2"), expect: 200 },
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
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= TOTAL) return;
        if (i % (TOTAL / 3) === 0 || i === TOTAL - 1) {
          gc();
          heap.push(process.memoryUsage().heapUsed);
        }
        const kind = KINDS[i % KINDS.length]!;
        const res = await fetch(base, { method: "POST", headers: { "content-type": "application/json", authorization: kind.user }, body: JSON.stringify(kind.body) });
        await res.arrayBuffer();
        if (res.status !== kind.expect) unexpected.push(`${i}: ${res.status} (expected ${kind.expect})`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    sampling = false;
    await sampler;

    assert.deepEqual(unexpected.slice(0, 5), []);
    assert.ok(peak <= 8, `peak ${peak} upstream connections (bound 8)`);
    // Samples after collection at 0, 1/3, 2/3 and the end; warm-up (pools, caches, JIT) happens in the first third.
    const [, firstThird, , last] = heap;
    assert.ok(firstThird !== undefined && last !== undefined, JSON.stringify(heap));
    gc();
    const settled = process.memoryUsage().heapUsed;
    t.diagnostic(`heap after collection (MiB): ${heap.map((h) => (h / 2 ** 20).toFixed(1)).join(", ")}, settled ${(settled / 2 ** 20).toFixed(1)}; peak upstream connections ${peak}`);
    // Flat: what is live at the end is within 25% (+8 MiB of slack) of what was live after the first third.
    assert.ok(Math.min(last, settled) <= firstThird * 1.25 + 8 * 1024 * 1024, `heap grew from ${firstThird} to ${last} (${settled} after the run)`);
  });
});
