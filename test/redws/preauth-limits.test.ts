// Red team (issue 17, fixed findings and guarantees): session limits that an unauthenticated client can spend
// for someone else. Each test states what should hold; a failing one is a finding.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { RawSession, startSessionGateway, startupMessage, type SessionGateway } from "../harness/sessions.ts";

describe("redws: pre-authentication sessions and the per-role bound", () => {
  let cluster: Cluster;
  let gw: SessionGateway;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role pw login password 'pw-secret'; create role app login;`);
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    gw = await startSessionGateway(["host all app 127.0.0.1/32 reject", "host all pw 127.0.0.1/32 scram-sha-256"].join("\n") + "\n", cluster.port, {
      HBAGATE_SESSIONS_MAX: "20",
      HBAGATE_SESSIONS_MAX_PER_ROLE: "2",
      HBAGATE_SESSION_AUTH_TIMEOUT_MS: "30000",
    });
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  /** Clients that send pw's startup, are asked for a password and never answer. */
  const squat = async (n: number) => {
    const squatters: RawSession[] = [];
    for (let i = 0; i < n; i++) {
      const s = new RawSession(gw.wsUrl);
      await s.opened;
      s.send(startupMessage({ user: "pw", database: "postgres" }));
      assert.ok(await s.next("R"));
      squatters.push(s);
    }
    return squatters;
  };

  // Found by the red team, fixed: ClientSession.startup() calls registry.claim(this, user) before the
  // hba match and before any password. PostgreSQL counts a role's connections
  // (rolconnlimit) only once the client is authenticated, so a stranger who
  // knows a role name cannot lock that role out.
  test("clients that never answer the password request do not use up the role's sessions", async () => {
    const squatters = await squat(2);
    try {
      const legit = new RawSession(gw.wsUrl);
      await legit.login({ user: "pw", database: "postgres" }, "pw-secret");
      legit.close();
    } finally {
      for (const s of squatters) s.close();
    }
  });

  test("a wrong password reads as 28P01, not 53300, while strangers sit on the role's password prompt", async () => {
    const squatters = await squat(2);
    try {
      // A wrong password for pw should read as a password failure (28P01), whatever strangers hold.
      const guess = new RawSession(gw.wsUrl);
      await assert.rejects(guess.login({ user: "pw", database: "postgres" }, "wrong"), (e: { code?: string }) => e.code === "28P01");
    } finally {
      for (const s of squatters) s.close();
    }
  });
});
