// Red team (issue 17, fixed findings and guarantees): what the upgrade request tells the rules about the
// connection (address, TLS, local), and who may claim it.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { queryMessage, RawSession, startSessionGateway } from "../harness/sessions.ts";

describe("redws: connection facts of a session", () => {
  let cluster: Cluster;
  let dir: string;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login;`);
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    dir = await mkdtemp(join(tmpdir(), "hbagate-redws-"));
  });
  after(async () => {
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  // GUARANTEE (passes): an untrusted peer's X-Forwarded-* are ignored.
  test("untrusted peer: forged X-Forwarded-Proto/-For do not match hostssl or another address's line", async () => {
    const gw = await startSessionGateway(["hostssl all app 127.0.0.1/32 trust", "host all app 10.0.0.0/8 trust", "host all app 127.0.0.1/32 reject"].join("\n") + "\n", cluster.port);
    try {
      const s = new RawSession(gw.wsUrl, { "x-forwarded-proto": "https", "x-forwarded-for": "10.1.2.3" });
      await assert.rejects(s.login({ user: "app", database: "postgres" }), (e: { code?: string; message?: string }) => e.code === "28000" && /rejects connection/.test(e.message ?? ""));
    } finally {
      await gw.close();
    }
  });

  // Found by the red team, fixed: a WebSocket over TLS behind a trusted proxy is reported by common
  // proxies as X-Forwarded-Proto: wss (Traefik sets "wss"/"ws" for WebSocket
  // upgrades). forwardedPeer() counts only "https" as encrypted, so a client on
  // wss:// behind such a proxy is "no encryption" and hostssl lines never match.
  test("trusted proxy saying X-Forwarded-Proto: wss: the session is encrypted (hostssl matches)", async () => {
    const gw = await startSessionGateway(["hostssl all app 127.0.0.1/32 trust", "host all app 127.0.0.1/32 reject"].join("\n") + "\n", cluster.port, {
      HBAGATE_TRUSTED_PROXIES: "127.0.0.1/32",
    });
    try {
      const s = new RawSession(gw.wsUrl, { "x-forwarded-proto": "wss", "x-forwarded-for": "127.0.0.1" });
      await s.login({ user: "app", database: "postgres" });
      s.close();
      // And a plain ws:// through the same proxy is not.
      const p = new RawSession(gw.wsUrl, { "x-forwarded-proto": "ws", "x-forwarded-for": "127.0.0.1" });
      await assert.rejects(p.login({ user: "app", database: "postgres" }), (e: { code?: string }) => e.code === "28000");
    } finally {
      await gw.close();
    }
  });

  // Found by the red team, fixed: lib/node/listeners.ts marks Unix-socket requests local by wrapping
  // fetch with a *copy* of env ({...env, [LOCAL]: true}). @hono/node-server's
  // upgradeWebSocket records the connection symbol on that copy, while its
  // upgrade listener checks the original env: every upgrade on the Unix socket
  // is answered "HTTP/1.1 200" and closed, so `local` lines can never be used by
  // a session (HTTP on the same socket works).
  test("a session over the Unix-socket listener is a local connection", async () => {
    const socket = join(dir, "gw.sock");
    const gw = await startSessionGateway("local all app trust\n", cluster.port, { HBAGATE_UNIX_SOCKET: socket });
    try {
      const s = new RawSession(`ws+unix://${socket}:/v2`, { host: "localhost" });
      await s.login({ user: "app", database: "postgres" });
      s.send(queryMessage("select 1"));
      assert.ok(await s.next("D"));
      s.close();
    } finally {
      await gw.close();
    }
  });
});
