// Red-team (redws): CancelRequests are forwarded on upstream connections of
// their own. Are those bounded like every other upstream connection?
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startPgProxy, type PgProxy } from "../harness/tcp-proxy.ts";
import { eventually } from "../harness/eventually.ts";
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

  // FINDING (low/medium): Sessions.cancel -> Pools.cancelSession -> cancelOnServer
  // opens a fresh upstream TCP connection per CancelRequest, outside the
  // connection budget and without any bound of its own (the cancelling
  // WebSocket's session slot is released at once). A client holding one session
  // key can make the gateway open as many concurrent upstream connections as it
  // opens WebSockets; each one is a postmaster child upstream, and each is held up
  // to 5 s when the server is slow to close it.
  test("concurrent upstream connections for cancels stay within HBAGATE_POOL_MAX_TOTAL", async () => {
    const s = new RawSession(gw.wsUrl);
    const key = await s.login({ user: "app", database: "postgres" });
    const held = proxy.holdCancels({ until: () => false, atMostMs: 4000 });
    const cancels: RawSession[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const c = new RawSession(gw.wsUrl);
        void c.opened.then(() => c.send(new MessageWriter().int32(CANCEL_REQUEST).int32(key.pid).int32(key.secret).finish())).catch(() => {});
        cancels.push(c);
      }
      await Promise.all(cancels.map((c) => c.closed));
      // An absence is being measured: give the forwarded cancels time to arrive.
      await eventually(() => held.length >= 20, { what: "cancels upstream", timeoutMs: 1500 }).catch(() => {});
      const concurrent = held.filter((h) => h.releasedAt === undefined).length;
      assert.ok(concurrent + 1 <= 4, `${concurrent} cancel connections open upstream at once beside the session's own, with HBAGATE_POOL_MAX_TOTAL=4`);
    } finally {
      s.close();
    }
  });
});
