// The brute-force brake across instances (Lambda runs many, each with its own
// memory): two gateways on one real PostgreSQL, counting failures in a table
// there (HBAGATE_AUTH_SHARED_TABLE). A pair locked through one instance is
// refused by the other; a cached success costs the table nothing; a table
// that cannot be used leaves each instance's own brake in force.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic, postSqlTo, statusAndCode } from "../harness/http.ts";

const TABLE = "hbagate_failures";
const LOCK_AFTER = 4;

describe("failures counted across gateway instances", () => {
  let cluster: Cluster;
  let a: RunningGateway;
  let b: RunningGateway;
  const logs: LogEvent[] = [];

  before(async () => {
    cluster = await startCluster();
    const users = ["alice", "bob", "carol", "dave", "erin"];
    await cluster.sql.unsafe(
      `create role svc login password 'svc-pw'; grant create on schema public to svc; alter role svc set log_statement = 'all';` +
        users.map((u) => `create role ${u} login password 'right-${u}';`).join(""),
    );
    await cluster.writeHba(`host all svc,${users.join(",")} 127.0.0.1/32 scram-sha-256\n`, { reload: true });
    const hbaFile = await cluster.writeFile("gateway_hba.conf", `host all ${users.join(",")} 127.0.0.1/32 scram-sha-256\n`);
    const settings = nodeSettings({
      HBAGATE_HBA_FILE: hbaFile,
      HBAGATE_SERVICE_USER: "svc",
      HBAGATE_SERVICE_PASSWORD: "svc-pw",
      HBAGATE_AUTH_SHARED_TABLE: TABLE,
      HBAGATE_AUTH_LOCK_AFTER: String(LOCK_AFTER),
      // No slowed answers: the counts are what is tested.
      HBAGATE_AUTH_SLOW_AFTER: "100",
      HBAGATE_POOL_MAX: "2",
    }, cluster.port);
    [a, b] = await Promise.all([startNodeGateway(settings, logs), startNodeGateway(settings, logs)]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await cluster?.stop();
  });

  const ask = async (g: RunningGateway, user: string, password: string) => {
    return statusAndCode(await postSqlTo(g.urls[0]!, { query: "select 1 as n" }, { headers: { authorization: basic(user, password) } }));
  };
  const tableStatements = async () => (await cluster.readLog()).split("\n").filter((l) => l.includes(TABLE) && l.includes("statement:")).length;

  test("failures split between instances lock the pair on both", async () => {
    for (const g of [a, b, a, b]) assert.equal(await ask(g, "alice", "wrong"), "401 28P01");
    // Neither instance saw LOCK_AFTER failures itself.
    assert.equal(await ask(a, "alice", "right-alice"), "429 08004");
    assert.equal(await ask(b, "alice", "right-alice"), "429 08004");
  });

  test("a pair locked through one instance is refused by another that never saw it fail", async () => {
    for (let i = 0; i < LOCK_AFTER; i++) assert.equal(await ask(a, "bob", "wrong"), "401 28P01");
    assert.equal(await ask(b, "bob", "right-bob"), "429 08004");
    assert.equal(await ask(b, "bob", "wrong"), "429 08004", "nor is a guess verified there");
  });

  test("a success clears the shared count; a cached success costs the table nothing", async () => {
    for (let i = 0; i < LOCK_AFTER - 1; i++) assert.equal(await ask(a, "carol", "wrong"), "401 28P01");
    assert.equal(await ask(b, "carol", "right-carol"), "200");
    for (let i = 0; i < LOCK_AFTER - 1; i++) assert.equal(await ask(b, "carol", "wrong"), "401 28P01");
    assert.equal(await ask(b, "carol", "right-carol"), "200", "the failures before the success no longer count");
    // The success is cached now (HBAGATE_VERIFIED_TTL_MS): no statement on the table.
    const before = await tableStatements();
    for (let i = 0; i < 10; i++) assert.equal(await ask(b, "carol", "right-carol"), "200");
    // Deliberately a fixed grace: a statement that did not happen cannot be polled for; this lets the server's log catch up.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await tableStatements(), before);
  });

  test("a table the service user may not use: each instance's own brake still locks, and the log says why", async () => {
    await cluster.sql.unsafe(`revoke all on ${TABLE} from svc; alter table ${TABLE} owner to postgres`);
    try {
      for (let i = 0; i < LOCK_AFTER; i++) assert.equal(await ask(a, "dave", "wrong"), "401 28P01");
      assert.equal(await ask(a, "dave", "right-dave"), "429 08004", "locked on the instance that saw the failures");
      assert.equal(await ask(b, "dave", "right-dave"), "200", "the other instance cannot know");
      assert.ok(logs.some((l) => l.msg === "the shared failure table cannot be used; each instance counts failures on its own meanwhile"), JSON.stringify(logs.slice(-5)));
    } finally {
      await cluster.sql.unsafe(`alter table ${TABLE} owner to svc; grant all on ${TABLE} to svc`);
    }
    // Usable again: counted across instances again.
    for (const g of [a, b, a, b]) assert.equal(await ask(g, "erin", "wrong"), "401 28P01");
    assert.equal(await ask(b, "erin", "right-erin"), "429 08004");
  });

  test("the service user's password may come from the role credentials (a secret when deployed) instead of HBAGATE_SERVICE_PASSWORD", async () => {
    const hbaFile = await cluster.writeFile("gateway_hba_c.conf", "host all frank 127.0.0.1/32 scram-sha-256\n");
    const rolesFile = await cluster.writeFile("roles.json", JSON.stringify({ svc: "svc-pw" }));
    await cluster.sql.unsafe(`create role frank login password 'right-frank'`);
    await cluster.writeHba(`host all all 127.0.0.1/32 scram-sha-256\n`, { reload: true });
    const env = {
      HBAGATE_HBA_FILE: hbaFile,
      HBAGATE_SERVICE_USER: "svc",
      HBAGATE_ROLE_CREDENTIALS_FILE: rolesFile,
      HBAGATE_AUTH_SHARED_TABLE: TABLE,
      HBAGATE_AUTH_LOCK_AFTER: String(LOCK_AFTER),
      HBAGATE_AUTH_SLOW_AFTER: "100",
    };
    const [c, d] = await Promise.all([startNodeGateway(nodeSettings(env, cluster.port), logs), startNodeGateway(nodeSettings(env, cluster.port), logs)]);
    try {
      for (const g of [c, d, c, d]) assert.equal(await ask(g, "frank", "wrong"), "401 28P01");
      assert.equal(await ask(d, "frank", "right-frank"), "429 08004");
    } finally {
      await Promise.all([c.close(), d.close()]);
    }
  });

  test("the table holds digests, never a user name or an address", async () => {
    const rows = await cluster.sql.unsafe<{ pair: string }[]>(`select pair from ${TABLE}`);
    assert.ok(rows.length > 0);
    for (const { pair } of rows) assert.match(pair, /^[0-9a-f]{64}$/);
  });
});
