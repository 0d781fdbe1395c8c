// Red team (oauth sessions): a client that disconnects (or times out) after its token is
// verified, while the gateway's upstream login for it is still on its way. The gateway goes on
// with that login (its connection is only ended once it is ready), so the connection exists
// upstream whatever the client did; if the session's places were freed at the disconnect, one end
// user could connect, send the token and drop, again and again, and have any number of upstream
// logins in flight for one identity: the per-identity bound would bound nothing. The place is
// held until the upstream login has settled, as PostgreSQL counts a backend until it exits.
import assert from "node:assert/strict";
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { eventually } from "../harness/eventually.ts";
import { startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { passwordMessage, RawSession, startSessionGateway, startupMessage, type SessionGateway } from "../harness/sessions.ts";

describe("redws: a session's places are held while its upstream login runs", () => {
  let cluster: Cluster;
  let issuer: Issuer;
  let gw: SessionGateway;
  let front: Server;
  /** While true, new upstream connections are taken in and held, unanswered. */
  let holding = false;
  const held: Socket[] = [];

  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe("create role webapp login");
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    front = createServer((client) => {
      client.on("error", () => {});
      if (holding) {
        held.push(client);
        return;
      }
      const server = connect({ host: "127.0.0.1", port: cluster.port });
      server.on("error", () => client.destroy());
      client.on("close", () => server.destroy());
      server.on("close", () => client.destroy());
      client.pipe(server).pipe(client);
    });
    await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
    gw = await startSessionGateway(`host all webapp 127.0.0.1/32 oauth issuer=${issuer.url} scope=api delegate_ident_mapping=1\n`, (front.address() as AddressInfo).port, {
      HBAGATE_OAUTH_CA_FILE: issuer.caFile,
      HBAGATE_SESSIONS_MAX_PER_ROLE: "4",
      HBAGATE_SESSIONS_MAX_PER_IDENTITY: "1",
    });
  });
  after(async () => {
    for (const s of held) s.destroy();
    await gw?.close();
    await new Promise((resolve) => front?.close(resolve));
    await issuer?.stop();
    await cluster?.stop();
  });

  test("alice drops while her login is upstream: a second one is refused (53300) until that login settles, then gets in", async () => {
    const token = await issuer.sign({ sub: "alice", role: "webapp", scope: "api" });
    holding = true;
    const first = new RawSession(gw.wsUrl);
    await first.opened;
    first.send(startupMessage({ user: "webapp", database: "postgres" }));
    assert.ok(await first.next("R"));
    first.send(passwordMessage(token));
    // The gateway's upstream login for alice is on its way (held).
    await eventually(() => held.length === 1, { what: "the upstream login to arrive" });
    first.close();
    await first.closed;

    // Her one place is still taken by that login: nothing more goes upstream for her.
    const second = new RawSession(gw.wsUrl);
    await assert.rejects(second.login({ user: "webapp", database: "postgres" }, token), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, "53300", e.message);
      return true;
    });
    assert.equal(held.length, 1, "no second upstream login for alice");

    // The held login fails; the place is free again.
    holding = false;
    held[0]!.destroy();
    await eventually(
      async () => {
        const s = new RawSession(gw.wsUrl);
        try {
          await s.login({ user: "webapp", database: "postgres" }, token);
          return true;
        } finally {
          s.close();
        }
      },
      { what: "alice to get in once the held login settled" },
    );
  });
});
