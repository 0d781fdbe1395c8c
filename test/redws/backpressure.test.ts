// Red team (issue 17, fixed findings and guarantees): a client that never reads. What the gateway holds for it
// must stay bounded whatever the client sends.
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { eventually } from "../harness/eventually.ts";
import { queryMessage, RawSession, startSessionGateway, startupMessage, type SessionGateway } from "../harness/sessions.ts";

/** Bytes the gateway has queued, unsent, on its accepted sockets (the server side of connections to `port`). */
function queuedOnServerSockets(port: number): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  let n = 0;
  for (const h of handles) if (h instanceof Socket && h.localPort === port) n += h.writableLength;
  return n;
}

const MiB = 1 << 20;

describe("redws: clients that never read", () => {
  let cluster: Cluster;
  let gw: SessionGateway;
  let port: number;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login;`);
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    gw = await startSessionGateway("host all app 127.0.0.1/32 trust\nhost all pw 127.0.0.1/32 scram-sha-256\n", cluster.port);
    port = Number(gw.authority.slice(gw.authority.lastIndexOf(":") + 1));
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  // GUARANTEE (passes): the server's output is paused when the client does not read.
  test("a result the client does not read: the backend waits (ClientWrite) and the gateway queues about 1 MiB, not the result", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.ws.pause();
    s.send(queryMessage("select repeat('x', 100000) from generate_series(1, 2000)")); // ~200 MB
    await eventually(async () => (await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = 'app' and wait_event = 'ClientWrite'`)[0]!.n === 1, {
      what: "the backend to wait on its client",
    });
    assert.ok(queuedOnServerSockets(port) < 8 * MiB, `queued ${queuedOnServerSockets(port)} bytes`);
    s.close();
  });

  // GUARANTEE (passes): ws 8.23 bounds pending auto-pongs (maxPendingAutoPongs)
  // and terminates a client that pings without reading; nothing piles up.
  test("pings from a client that never reads: what the gateway queues stays bounded", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.opened;
    s.send(startupMessage({ user: "pw", database: "postgres" }));
    assert.ok(await s.next("R"));
    s.ws.pause();
    const payload = Buffer.alloc(125, 0x61);
    const total = 48 * MiB;
    for (let sent = 0; sent < total; sent += payload.length) s.ws.ping(payload);
    // Wait until the client's own queue has gone out (the gateway has read it all) or the gateway stopped reading.
    await eventually(() => s.ws.bufferedAmount === 0 || queuedOnServerSockets(port) > 16 * MiB, { what: "the pings to be sent", timeoutMs: 60_000 });
    const queued = queuedOnServerSockets(port);
    s.close();
    assert.ok(queued < 16 * MiB, `the gateway holds ${(queued / MiB).toFixed(1)} MiB of pongs for one client that does not read`);
  });
});
