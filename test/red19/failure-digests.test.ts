// red19: "rows hold SHA-256 digests of (client, identity), never names or
// addresses". The digest is unkeyed, over JSON.stringify([address, identity]):
// anyone who can read the table (a backup, a role granted SELECT, the DBA)
// recovers who failed from where by enumeration. Here: a /16 of addresses ×
// a handful of role names (pg_roles lists them all) takes well under a
// second; all of IPv4 for one name is 2^32 hashes, minutes on one GPU.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { failureTable } from "../../lib/upstream/failure-table.ts";

describe("red19: the shared failure table's digests", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a row does not give away its client address and role name", async () => {
    const table = failureTable(cluster.sql, { table: "hbagate_failures", lockAfter: 10, windowMs: 300_000, lockMs: 300_000, timeoutMs: 2000, log: () => {} });
    await table.failed("198.51.37.201", "alice");
    const [row] = await cluster.sql<{ pair: string }[]>`select pair from hbagate_failures`;
    const names = ["postgres", "app", "alice", "bob", "reporting"];
    let found: string | undefined;
    outer: for (let c = 0; c < 256; c++)
      for (let d = 0; d < 256; d++)
        for (const name of names) {
          const address = `198.51.${c}.${d}`;
          if (createHash("sha256").update(JSON.stringify([address, name])).digest("hex") === row!.pair) {
            found = `${address} ${name}`;
            break outer;
          }
        }
    assert.equal(found, undefined, `recovered from the digest: ${found}`);
  });
});
