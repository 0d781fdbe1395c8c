// The shared brake and LDAP names (a red team found each alias counted
// apart): under a search filter that finds an entry by more than one name (uid
// or mail), the DN the search resolved is counted across instances as well as
// the name typed, so one directory entry gets LOCK_AFTER guesses in all, not
// LOCK_AFTER per alias, even when each guess lands on a fresh instance.
import { authenticateLdap } from "../../lib/auth/ldap.ts";
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { failureTable } from "../../lib/upstream/failure-table.ts";
import { serviceQueryOf } from "../../lib/upstream/service-query.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { slapdMissing, startSlapd, type Slapd } from "../harness/slapd.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const BASE = "dc=example,dc=net";
const LOCK_AFTER = 3;

describe("the shared brake and LDAP aliases", { skip: slapdMissing() ?? false }, () => {
  let slapd: Slapd;
  let cluster: Cluster;
  let pools: Pools;
  before(async () => {
    [slapd, cluster] = await Promise.all([startSlapd(), startCluster()]);
    pools = testPools(1);
  });
  after(async () => {
    await pools?.close();
    await Promise.all([slapd?.stop(), cluster?.stop()]);
  });

  test("each guess on a fresh instance (Lambda): no more than LOCK_AFTER guesses at one directory entry reach the directory", async () => {
    const shared = failureTable(serviceQueryOf(cluster.sql), {
      table: "red2_ldap_failures",
      lockAfter: LOCK_AFTER,
      windowMs: 300_000,
      lockMs: 300_000,
      timeoutMs: 2000,
      key: () => "a-shared-key-of-16+-chars",
      log: () => {},
    });
    const rules = `host all all all ldap ldapserver=127.0.0.1 ldapport=${slapd.port} ldapbasedn="${BASE}" ldapsearchfilter="(|(uid=$username)(mail=$username))"`;
    // A fresh instance per request: its own limiter, the shared table in common.
    const instance = () =>
      testApp(pools, rules, {
        peer: () => ({ transport: "host", address: "10.9.0.1", encrypted: false }),
        failureLimiter: new FailureLimiter({ slowAfter: 100, lockAfter: LOCK_AFTER, windowMs: 300_000, lockMs: 300_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 100 }),
        sharedFailures: shared,
        ldap: { connectTimeoutMs: 2000, authenticate: authenticateLdap, operationTimeoutMs: 2000, caFile: slapd.caFile },
      });
    const ask = async (user: string, password: string) => {
      const res = await instance().request("/v1/postgres/sql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: basic(user, password) },
        body: '{"query":"select 1"}',
      });
      return res.status;
    };
    const binds = async () => (await slapd.readLog()).split("\n").filter((l) => l.includes(`BIND dn="uid=test1,${BASE}"`)).length;
    const start = await binds();
    const statuses: number[] = [];
    for (const name of ["test1", "test1@example.net"]) for (let i = 0; i < LOCK_AFTER + 1; i++) statuses.push(await ask(name, `wrong-${i}`));
    // Deliberately a fixed grace: binds that must not happen cannot be polled for; this lets slapd's log catch up.
    await new Promise((r) => setTimeout(r, 300));
    const reached = (await binds()) - start;
    assert.ok(reached <= LOCK_AFTER, `${reached} password binds as uid=test1 reached the directory (limit ${LOCK_AFTER}); statuses ${statuses.join(",")}`);
  });
});
