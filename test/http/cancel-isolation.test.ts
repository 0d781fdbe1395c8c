// A CancelRequest lands on a backend process, not on a statement: one sent
// for a statement that finishes before it arrives would cancel whatever that
// connection runs next, another caller's statement. Cancels the gateway sends
// (a response limit reached, a caller gone) must only ever end their own.
import assert from "node:assert/strict";
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { GatewayError } from "../../lib/errors.ts";
import { createApp } from "../../lib/http/app.ts";
import { runSingle } from "../../lib/query/run.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testDeps, testPools } from "./deps.ts";

describe("cancels end only their own statement", () => {
  let cluster: Cluster;
  let pools: Pools;

  before(async () => {
    cluster = await startCluster();
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const auth = "Basic " + Buffer.from("postgres:").toString("base64");

  test("a result past the row limit that finishes before its cancel arrives: the next statements run", async () => {
    pools = testPools(cluster.port, { max: 2, statementTimeout: 20_000 });
    const app = createApp(testDeps(pools, "host all all all trust\n", { responseLimits: { maxRows: 10, maxBytes: 1 << 20 } }));
    const ask = async (query: string) => {
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: auth }, body: JSON.stringify({ query }) });
      return { status: res.status, json: (await res.json()) as { error?: { code: string } } };
    };
    const victims: string[] = [];
    // One caller overruns the limit with a result PostgreSQL finishes at once; others run short
    // statements on the same pool, in turn and at the same time.
    for (let round = 0; round < 60; round++) {
      const [over, ...others] = await Promise.all([
        ask("select g from generate_series(1, 40) g"),
        ask("select pg_sleep(0.002), 1 as n"),
        ask("select 2 as n"),
      ]);
      assert.deepEqual([over!.status, over!.json.error?.code], [507, "53400"]);
      const next = await ask("select 3 as n");
      for (const r of [...others, next]) if (r.status !== 200) victims.push(`round ${round}: ${r.status} ${r.json.error?.code}`);
    }
    assert.deepEqual(victims, []);
  });

  test("a cancel the server never answers holds the pool for at most connect_timeout", async () => {
    // A TCP proxy that forwards the session but swallows the CancelRequest (a second
    // connection): accepted, never answered, never closed.
    const sockets = new Set<Socket>();
    let connections = 0;
    const proxy = createServer((client) => {
      sockets.add(client);
      if (++connections > 1) return;
      const upstream = tcpConnect(cluster.port, "127.0.0.1");
      sockets.add(upstream);
      for (const s of [client, upstream]) s.on("error", () => (client.destroy(), upstream.destroy()));
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const viaProxy = testPools((proxy.address() as AddressInfo).port, { max: 1, connectTimeout: 2, statementTimeout: 1500 });
    try {
      const gone = new AbortController();
      const limits = { maxRows: 10, maxBytes: 1 << 20 };
      const marker = `select pg_sleep(5) /* swallowed-cancel-${Date.now()} */`;
      const outcome = viaProxy
        .use("postgres", "postgres", undefined, {}, (session) => runSingle(session, { query: marker }, "json", limits, () => gone.signal))
        .then(() => undefined, (e: unknown) => e);
      // The caller leaves once the statement runs (not a guessed 100 ms after the start, which
      // a slow connect could outlast: then no CancelRequest would be sent at all).
      await eventually(
        async () => (await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where query = ${marker} and state = 'active'`)[0]!.n === 1,
        { what: "the statement to run" },
      );
      const abortedAt = Date.now();
      gone.abort();
      const error = await outcome;
      const held = Date.now() - abortedAt;
      assert.ok(error instanceof GatewayError, String(error));
      assert.equal(error.code, "57014", "the statement ran on to its statement_timeout");
      assert.equal(connections, 2, "a CancelRequest was sent");
      // The cancel is sent at the abort or later, and waited for connect_timeout (2 s): a lower bound timers keep.
      assert.ok(held >= 1900, `the connection was held while the cancel could still arrive (${held} ms)`);
      // Let go of after connect_timeout, not held for good (generous: only a hang, or a wait of
      // several connect_timeouts, reaches it; the next statement below also needs the one connection).
      assert.ok(held < 6000, `and let go of once connect_timeout passed (${held} ms)`);
      const next = await viaProxy.use("postgres", "postgres", undefined, {}, (session) => runSingle(session, { query: "select 1 as n" }, "json", limits));
      assert.deepEqual(next.rows, [{ n: 1 }]);
    } finally {
      for (const s of sockets) s.destroy();
      proxy.close();
      await viaProxy.close();
    }
  });
});
