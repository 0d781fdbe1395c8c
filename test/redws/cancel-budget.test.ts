// Red team (issue 17, fixed findings and guarantees): CancelRequests are forwarded on upstream connections of
// their own. Are those bounded like every other upstream connection?
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startPgProxy, type PgProxy } from "../harness/tcp-proxy.ts";
import { RawSession, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import { CANCEL_REQUEST, MessageWriter } from "../../lib/wire/protocol.ts";

describe("redws: cancel requests and the upstream budget", () => {
  let cluster: Cluster;
  let proxy: PgProxy;
  let gw: SessionGateway;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login;`);
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    proxy = await startPgProxy(cluster.port);
    gw = await startSessionGateway("host all app 127.0.0.1/32 trust\n", proxy.port, { HBAGATE_POOL_MAX_TOTAL: "4" });
  });
  after(async () => {
    await gw?.close();
    await proxy?.close();
    await cluster?.stop();
  });

  // Found by the red team: each CancelRequest opened an upstream connection of its own, outside
  // the connection budget and unbounded (20 cancels, 20 connections). Now a session has one
  // cancel on its way at a time, and that connection is counted like a verification login.
  test("concurrent upstream connections for cancels stay within HBAGATE_POOL_MAX_TOTAL", async () => {
    const s = new RawSession(gw.wsUrl);
    const key = await s.login({ user: "app", database: "postgres" });
    // From now on the upstream accepts connections and never answers or closes them: a cancel holds its connection.
    const before = proxy.accepted;
    proxy.swallowNew();
    const cancels: RawSession[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const c = new RawSession(gw.wsUrl);
        void c.opened.then(() => c.send(new MessageWriter().int32(CANCEL_REQUEST).int32(key.pid).int32(key.secret).finish())).catch(() => {});
        cancels.push(c);
      }
      await Promise.all(cancels.map((c) => c.closed));
      // An absence is being measured: give the forwarded cancels time to arrive.
      await new Promise((r) => setTimeout(r, 1000));
      const opened = proxy.accepted - before;
      assert.ok(opened >= 1, "the first cancel went upstream");
      assert.ok(opened + 1 <= 4, `${opened} cancel connections opened upstream beside the session's own, with HBAGATE_POOL_MAX_TOTAL=4`);
    } finally {
      s.close();
    }
  });
});
