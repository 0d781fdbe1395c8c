// A network black hole: the upstream's existing connections go silent
// (nothing closes, nothing arrives) while new ones still pass. The request's
// deadline still bounds the request, and the silent connection is let go of.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startPgProxy, type PgProxy } from "../harness/tcp-proxy.ts";
import { postSql, testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";

describe("a silent upstream", () => {
  let cluster: Cluster;
  let proxy: PgProxy;
  const opened: Pools[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    proxy = await startPgProxy(cluster.port);
  });
  after(async () => {
    for (const p of opened) await p.close();
    await proxy?.close();
    await cluster?.stop();
  });

  for (const mode of ["under a statement", "before the probe of an idle connection"] as const) {
    test(`${mode}: the request is answered (cut 5 s after its deadline at most) and the next one is served`, async () => {
      const pools = testPools(proxy.port, { max: 1, connectTimeout: 1, staleAfterMs: mode === "under a statement" ? 60_000 : 100, statementTimeout: 0 });
      opened.push(pools);
      const app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "app" }, requestTimeoutMs: 300 });
      assert.equal((await postSql(app, { query: "select 1" })).status, 200);
      // The point, not a wait for something: idle past staleAfterMs (100), so the next use probes it.
      await new Promise((r) => setTimeout(r, 200));
      proxy.blackHole();
      const first = await Promise.race([postSql(app, { query: "select 1" }), new Promise<{ status: string }>((r) => setTimeout(() => r({ status: "no answer in 15 s" }), 15_000))]);
      assert.notEqual(first.status, "no answer in 15 s");
      // Under a statement: ended (its outcome unknown). Before the probe: nothing was sent, so the
      // request ran on a new connection.
      assert.equal(first.status === 200, mode !== "under a statement", JSON.stringify(first));
      const next = await postSql(app, { query: "select 1" });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      assert.equal(pools.openConnections, 1, "the silent connection was let go of");
    });
  }
});
