// Red team (red16): Neon-Batch-Isolation-Level is looked up in a plain object, so a name of
// Object.prototype's ("constructor", "toString", "__proto__") passes the check and its
// JavaScript value is spliced into BEGIN: the caller gets PostgreSQL's syntax error (42601, with
// "function Object() { [native code] }" in the statement) instead of the gateway's own refusal of
// an unknown level (22023 naming the levels). No injection: the text is JavaScript's own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testApp } from "../harness/gateway.ts";
import { testPools } from "../http/deps.ts";

describe("red16: Neon-Batch-Isolation-Level names from Object.prototype", () => {
  let cluster: Cluster;
  let pools: Pools;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  test("an unknown level is the gateway's 22023 whatever its name", async () => {
    const app = testApp(pools, "host all app 10.0.0.0/8 trust", { caller: { anonymousUser: "app" } });
    for (const level of ["Bogus", "constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const res = await app.request("/v1/postgres/sql", {
        method: "POST",
        headers: { "content-type": "application/json", "neon-batch-isolation-level": level },
        body: JSON.stringify({ queries: [{ query: "select 1" }] }),
      });
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      assert.equal(body.error?.code, "22023", `${level}: ${JSON.stringify(body)}`);
    }
  });
});
