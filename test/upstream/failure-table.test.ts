// The shared failure table's rows (a red team reversed unkeyed SHA-256
// digests of (address, role) by enumeration: a /16 and five role names in a
// fraction of a second). Digests are HMACs under a key every instance shares.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { failureTable } from "../../lib/upstream/failure-table.ts";
import { serviceQueryOf } from "../../lib/upstream/service-query.ts";

describe("the shared failure table's digests", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a row does not give away its client address and role name", async () => {
    const table = failureTable(serviceQueryOf(cluster.sql), { table: "hbagate_failures", lockAfter: 10, windowMs: 300_000, lockMs: 300_000, timeoutMs: 2000, key: () => "a key every instance shares", log: () => {} });
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

  test("instances with the same key count the same pair together; another key counts apart", async () => {
    const make = (key: string) =>
      failureTable(serviceQueryOf(cluster.sql), { table: "hbagate_failures", lockAfter: 10, windowMs: 300_000, lockMs: 300_000, timeoutMs: 2000, key: () => key, log: () => {} });
    const [a, b, other] = [make("shared key one"), make("shared key one"), make("a different key")];
    await a.attempt("192.0.2.7", "carol");
    assert.equal((await b.attempt("192.0.2.7", "carol"))?.failures, 2);
    assert.equal((await other.attempt("192.0.2.7", "carol"))?.failures, 1);
  });
});
