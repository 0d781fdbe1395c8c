// Red-team (red2): the shared failure table dropped while the gateway runs
// (an operator's cleanup, a restore, a migration tool that drops unknown
// tables) is never created again by a running instance, though the service
// user may create it: `created` stays resolved after the first success, and
// only a failed CREATE resets it. Every later count fails with 42P01, the log
// says so once, and the brake stays per-instance until the process restarts
// (README: "each instance's own brake applies until it answers again").
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { failureTable } from "../../lib/upstream/failure-table.ts";
import { serviceQueryOf } from "../../lib/upstream/service-query.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

describe("red2: shared failure table dropped mid-traffic", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test("the service user, who created the table once, creates it again and the shared count resumes", async () => {
    const logs: string[] = [];
    const shared = failureTable(serviceQueryOf(cluster.sql), {
      table: "red2_dropped",
      lockAfter: 3,
      windowMs: 300_000,
      lockMs: 300_000,
      timeoutMs: 2000,
      key: () => "a-shared-key-of-16+-chars",
      log: (e) => logs.push(e.msg),
    });
    assert.equal((await shared.attempt("10.0.0.1", "alice"))?.failures, 1);
    await cluster.sql.unsafe("drop table red2_dropped");
    const seen: (number | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push((await shared.attempt("10.0.0.1", "alice"))?.failures);
      await new Promise((r) => setTimeout(r, 100));
    }
    const exists = (await cluster.sql`select to_regclass('red2_dropped') is not null as e`)[0]!.e;
    assert.ok(exists && seen.at(-1) !== undefined, `table re-created: ${exists}; standings after the drop: ${JSON.stringify(seen)}; log: ${JSON.stringify(logs)}`);
  });
});
