// The shared failure table dropped while the gateway runs (an operator's
// cleanup, a restore, a migration tool): a running instance makes it again on
// its next count, and the brake is shared again (a red team found it stayed
// per-instance until a restart).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { failureTable } from "../../lib/upstream/failure-table.ts";
import { serviceQueryOf } from "../../lib/upstream/service-query.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { eventually } from "../harness/eventually.ts";

describe("shared failure table dropped mid-traffic", () => {
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
    const tableExists = async () => (await cluster.sql`select to_regclass('red2_dropped') is not null as e`)[0]!.e as boolean;
    // Attempt after attempt (the attempt is what re-creates the table) until one is counted in a table that is there again.
    await eventually(
      async () => {
        seen.push((await shared.attempt("10.0.0.1", "alice"))?.failures);
        return seen.at(-1) !== undefined && (await tableExists());
      },
      { intervalMs: 100, what: "the table re-created and the count resumed" },
    ).catch(() => {});
    const exists = await tableExists();
    assert.ok(exists && seen.at(-1) !== undefined, `table re-created: ${exists}; standings after the drop: ${JSON.stringify(seen)}; log: ${JSON.stringify(logs)}`);
  });
});
