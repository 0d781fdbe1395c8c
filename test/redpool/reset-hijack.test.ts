// red14: a caller replaces the gateway's own named statements on its shared
// session. The reset (session-reset.ts) is a set of statements the connection
// PREPAREs once under fixed names (hbagate_reset_N) and runs by name after
// every request; user statements seen twice run as hbagate_N. The protocol-level
// and SQL-level prepared statements share one namespace, and a DO block may
// EXECUTE 'DEALLOCATE …' / 'PREPARE …' (only the leading keyword is refused).
// So a caller can put any SELECT/INSERT of its own under the reset's names:
// the reset then undoes nothing, runs the caller's SQL after every later
// request (seeing each later caller's settings), and reported "clean" (when
// found: the reset's check, parsed afresh as the unnamed statement, counts
// the statements the gateway named, and the connection is not reused).
// Promise broken: "A request leaves no trace on its session … invisible to the
// next request of another caller on the same backend."
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";

/** PL/pgSQL that replaces every statement the reset named (but `keep`) with one that does nothing. */
const neuterReset = (keep: string) =>
  `for n in select name from pg_prepared_statements where not from_sql and name like 'hbagate\\_reset\\_%' and name <> '${keep}' loop
          execute format('deallocate %I', n);
          execute format('prepare %I as select true', n);
        end loop;`;

describe("red14: a caller's SQL takes over the gateway's prepared statements", () => {
  let cluster: Cluster;
  const opened: Pools[] = [];
  before(async () => {
    cluster = await startCluster();
    // An ordinary (non-superuser) role shared by every caller of the gateway.
    await cluster.sql.unsafe(`
      create role app login;
      create table loot (captured text);
      grant all on loot to app;
    `);
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    for (const p of opened) await p.close();
    await cluster?.stop();
  });

  /** A gateway with one pooled connection, which has served one request (its reset statements are prepared). */
  async function gateway() {
    const pools = testPools(cluster.port, { max: 1 });
    opened.push(pools);
    const app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "app" } });
    const post = (body: unknown) => postSql(app, body);
    assert.equal((await post({ query: "select 1" })).status, 200);
    return post;
  }

  test("a setting one caller makes is seen by the next caller after the reset was replaced", async () => {
    const post = await gateway();
    const attacker = await post({
      query: `do $$ declare n text; begin
        ${neuterReset("")}
      end $$`,
    });
    assert.equal(attacker.status, 200, JSON.stringify(attacker.body));
    const set = await post({ query: "select set_config('x.secret', 'token-A', false), set_config('statement_timeout', '1', false)" });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    // Another caller of the same role, next on the same backend.
    const next = await post({ query: "select current_setting('x.secret', true) as secret, current_setting('statement_timeout') as timeout" });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    // Empty on the backend that set it and was reset, absent on a new one: either way not token-A.
    const { secret, timeout } = (next.body.rows as { secret: string | null; timeout: string }[])[0]!;
    assert.ok(secret === "" || secret === null, `the next caller sees ${JSON.stringify(secret)}, set by an earlier request`);
    assert.equal(timeout, "2s", "the next caller runs under the statement_timeout an earlier request set");
  });

  test("a caller's SQL runs after every later caller's request and captures its settings", async () => {
    const post = await gateway();
    const attacker = await post({
      query: `do $$ declare n text; begin
        execute 'deallocate hbagate_reset_0';
        execute 'prepare hbagate_reset_0 as insert into loot select current_setting(''x.token'', true) where current_setting(''x.token'', true) <> ''''';
        ${neuterReset("hbagate_reset_0")}
      end $$`,
    });
    assert.equal(attacker.status, 200, JSON.stringify(attacker.body));
    // A victim (same role, e.g. another tenant's function) keeps a secret in its session for one request.
    const victim = await post({ query: "select set_config('x.token', 'victim-secret', false) is not null as ok" });
    assert.equal(victim.status, 200, JSON.stringify(victim.body));
    const stolen = await cluster.sql`select captured from loot`;
    assert.deepEqual(stolen.map((r) => r.captured), [], "no SQL of an earlier caller may run inside a later caller's request");
  });

  test("a statement the gateway prepared is answered by another caller's statement", async () => {
    const post = await gateway();
    const victimQuery = "select $1::int as balance";
    // Seen twice: prepared under a name of the connection's.
    for (const v of [10, 20]) assert.equal((await post({ query: victimQuery, params: [v] })).status, 200);
    const names = await post({ query: "select name from pg_prepared_statements where statement = 'select $1::int as balance'" });
    const name = names.body.rows[0].name as string;
    assert.match(name, /^hbagate_\d+$/);
    const attacker = await post({
      query: `do $$ declare n text; begin
        execute 'deallocate ${name}'; execute 'prepare ${name}(text) as select 999999 as balance';
        ${neuterReset("")}
      end $$`,
    });
    assert.equal(attacker.status, 200, JSON.stringify(attacker.body));
    const victim = await post({ query: victimQuery, params: [30] });
    assert.equal(victim.status, 200, JSON.stringify(victim.body));
    assert.deepEqual(victim.body.rows, [{ balance: 30 }], "the victim's own statement must answer the victim");
  });

  test("deallocating a statement the gateway prepared does not break the next caller's request", async () => {
    const post = await gateway();
    const victimQuery = "select $1::int + 1 as n";
    for (const v of [1, 2]) assert.equal((await post({ query: victimQuery, params: [v] })).status, 200);
    const names = await post({ query: "select name from pg_prepared_statements where statement = 'select $1::int + 1 as n'" });
    const name = names.body.rows[0].name as string;
    const attacker = await post({ query: `do $$ begin execute 'deallocate ${name}'; end $$` });
    assert.equal(attacker.status, 200, JSON.stringify(attacker.body));
    const victim = await post({ query: victimQuery, params: [3] });
    assert.equal(victim.status, 200, `the victim's request fails: ${JSON.stringify(victim.body)}`);
    assert.deepEqual(victim.body.rows, [{ n: 4 }]);
  });
});
