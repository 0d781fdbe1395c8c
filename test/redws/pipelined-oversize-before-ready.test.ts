// Red team (oauth sessions): a message sent ahead of the session being ready (pipelined behind
// the startup or the bearer token) whose header announces more than a session message may be.
// The gateway only looks at it when the session becomes ready and hands what waited to the
// relay; the relay's refusal must end that session with PostgreSQL's 54000 and free its place,
// not escape as a rejected promise nobody handles (which ends a Node process) and leave the
// session counted with a client nobody answers.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { passwordMessage, RawSession, startSessionGateway, startupMessage, type SessionGateway } from "../harness/sessions.ts";

/** A Query header announcing 256 MiB, with nothing behind it. */
const oversizedHeader = () => {
  const b = new Uint8Array(5);
  b[0] = 0x51;
  new DataView(b.buffer).setInt32(1, 256 * 1024 * 1024);
  return b;
};
const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

describe("redws: a message announced too large before the session is ready", () => {
  let cluster: Cluster;
  let issuer: Issuer;
  let gw: SessionGateway;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  before(async () => {
    process.on("unhandledRejection", onRejection);
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe("create role webapp login; create role app login");
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    gw = await startSessionGateway(
      [`host all webapp 127.0.0.1/32 oauth issuer=${issuer.url} scope=api delegate_ident_mapping=1`, "host all app 127.0.0.1/32 trust"].join("\n") + "\n",
      cluster.port,
      { HBAGATE_OAUTH_CA_FILE: issuer.caFile, HBAGATE_SESSIONS_MAX_PER_ROLE: "1", HBAGATE_SESSIONS_MAX_PER_IDENTITY: "1" },
    );
  });
  after(async () => {
    process.off("unhandledRejection", onRejection);
    await gw?.close();
    await issuer?.stop();
    await cluster?.stop();
  });

  test("behind a bearer token: 54000, the session closed, its places free again, no unhandled rejection", async () => {
    const token = await issuer.sign({ sub: "alice", role: "webapp", scope: "api" });
    const s = new RawSession(gw.wsUrl);
    await s.opened;
    s.send(startupMessage({ user: "webapp", database: "postgres" }));
    assert.ok(await s.next("R"));
    s.send(concat(passwordMessage(token), oversizedHeader()));
    const err = await s.error();
    assert.equal(err?.code, "54000", JSON.stringify(err));
    await s.closed;
    // The role's one place and alice's one place are free again.
    const again = new RawSession(gw.wsUrl);
    await again.login({ user: "webapp", database: "postgres" }, token);
    again.close();
    assert.deepEqual(rejections, []);
  });

  test("behind a startup on a trust line: the same", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.opened;
    s.send(concat(startupMessage({ user: "app", database: "postgres" }), oversizedHeader()));
    const err = await s.error();
    assert.equal(err?.code, "54000", JSON.stringify(err));
    await s.closed;
    const again = new RawSession(gw.wsUrl);
    await again.login({ user: "app", database: "postgres" });
    again.close();
    assert.deepEqual(rejections, []);
  });
});
