// Red team (issue 17, fixed findings and guarantees): an operator stopping the gateway while sessions are open.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { RawSession, startSessionGateway } from "../harness/sessions.ts";

describe("redws: stopping the gateway with sessions open", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login;`);
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => cluster?.stop());

  // Found by the red team, fixed: RunningGateway.close() (what SIGTERM/SIGINT run in functions/node.ts)
  // awaits listening.close() first, i.e. server.close(), which waits for every
  // connection including upgraded WebSockets; Sessions.close() (57P01 "terminating
  // connection due to administrator command") only runs after that. So a stop
  // hangs until every open session ends on its own (idle timeout, 5 min by
  // default, or lifetime, 1 h), and clients are never told why.
  test("close() ends open sessions with 57P01 and returns promptly", async () => {
    const gw = await startSessionGateway("host all app 127.0.0.1/32 trust\n", cluster.port);
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    const closing = gw.close();
    try {
      const outcome = await Promise.race([closing.then(() => "closed"), new Promise((r) => setTimeout(() => r("still waiting after 5 s"), 5000))]);
      assert.equal(outcome, "closed");
      const e = await s.error(1000);
      assert.equal(e?.code, "57P01");
    } finally {
      s.close();
      await closing;
    }
  });
});
