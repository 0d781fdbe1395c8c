// A request's settings (a bearer token's claims, Neon's options) are carried
// with its first statement: a request that fails before sending any leaves
// none of them for the next request on the connection (session.ts).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { settingStatement } from "../../lib/upstream/session.ts";

describe("a request's carried settings", () => {
  let cluster: Cluster;
  let pools: Pools;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    // One connection: both requests run on the same server session.
    pools = testPools(cluster.port, { max: 1 });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  test("a request that fails before sending a statement leaves its settings to nobody", async () => {
    const claims: [string, string][] = [["request.jwt.claims", '{"sub":"alice"}']];
    // Carried, never sent: fn gives up first (a caller gone, a refused statement).
    await assert.rejects(
      pools.use("postgres", "app", undefined, {}, (s) => s.lease(async () => Promise.reject(new Error("given up before sending")), undefined, true), undefined, claims),
      /given up before sending/,
    );
    const seen: (string | null)[] = [];
    await pools.use("postgres", "app", undefined, {}, (s) =>
      s.lease(async (conn, lastSent) => {
        const running = conn.run({ text: "select current_setting('request.jwt.claims', true), pg_backend_pid()", params: [], prepare: false, row: (v) => void seen.push(v[0] === null ? null : new TextDecoder().decode(v[0])) });
        lastSent();
        await running;
      }),
    );
    assert.ok(seen[0] === null || seen[0] === "", `the next request runs with ${JSON.stringify(seen[0])}`);
  });

  test("the statement that sets them answers without the values: claims are not sent back to the gateway", async () => {
    const claims = JSON.stringify({ sub: "alice", roles: "x".repeat(2000) });
    const answered: string[] = [];
    const seen: string[] = [];
    await pools.use("postgres", "app", undefined, {}, (s) =>
      s.lease(async (conn, lastSent) => {
        // As the session sends it, run as a statement of its own so that its row can be seen.
        await conn.run({ text: settingStatement(2), params: ["request.jwt.claims", claims, "application_name", "hbagate-test"], prepare: false, row: (v) => void answered.push(...v.map((x) => (x === null ? "NULL" : new TextDecoder().decode(x)))) });
        const running = conn.run({ text: "select current_setting('request.jwt.claims'), current_setting('application_name')", params: [], prepare: false, row: (v) => void seen.push(...v.map((x) => new TextDecoder().decode(x!))) });
        lastSent();
        await running;
      }),
    );
    assert.deepEqual(answered, ["f", "f"]);
    // And they were set, in order.
    assert.deepEqual(seen, [claims, "hbagate-test"]);
  });
});
