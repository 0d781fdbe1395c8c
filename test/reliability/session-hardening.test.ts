// What a red team found past the first isolation work, each reproduced
// against a real PostgreSQL: a reset redirected by a role's own operator, a
// failed reset cutting other callers, pool creators waiting one after another,
// a COPY that slipped through, a statement raising 28P01 run twice.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runSingle } from "../../lib/query/run.ts";
import { Pools } from "../../lib/upstream/pools.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";
import { query } from "../harness/wire.ts";

describe("session hardening", () => {
  let cluster: Cluster;
  const opened: Pools[] = [];
  const pools = (overrides: Parameters<typeof testPools>[1] = {}) => {
    const p = testPools(cluster.port, overrides);
    opened.push(p);
    return p;
  };

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role app login;
      create role hijack login;
      create schema hijack authorization hijack;
      create table t (v text);
      grant all on t to app, hijack;
      create role r1 login; create role r2 login; create role r3 login; create role r4 login;
      create role rotated login password 'configured-pw';
    `);
    // hijack's own "=" for timestamptz, always true, found before pg_catalog's through its search_path.
    await cluster.sql.unsafe(`
      set role hijack;
      create function hijack.teq(timestamptz, timestamptz) returns bool language sql immutable as 'select true';
      create operator hijack.= (function = hijack.teq, leftarg = timestamptz, rightarg = timestamptz);
      reset role;
      alter role hijack set search_path = hijack, pg_catalog, public;
    `);
    await cluster.sql.unsafe(`
      create procedure raise_28p01() language plpgsql as $$
      begin insert into t values ('once'); commit; raise sqlstate '28P01' using message = 'not really a login'; end $$;
      grant execute on procedure raise_28p01() to rotated; grant all on t to rotated;
    `);
    await cluster.writeHba("host all rotated 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    await Promise.all(opened.map((p) => p.close()));
    await cluster?.stop();
  });

  const pidOf = async (p: Pools, user: string) =>
    p.use("postgres", user, undefined, {}, (s) => runSingle(s, { query: "select pg_backend_pid() as pid" }, "json", { maxRows: 10, maxBytes: 1 << 20 })).then((r) => r.rows[0]!.pid);

  test("a role's own = operator cannot make the reset take an open transaction for an idle one", async () => {
    const p = pools({ max: 1 });
    const before = await pidOf(p, "hijack");
    // Only the gateway's own code could leave a transaction open (callers' BEGINs are refused): do it directly.
    await p.use("postgres", "hijack", undefined, {}, (s) => s.lease((conn) => query(conn, "begin")));
    const next = await pidOf(p, "hijack");
    assert.notEqual(next, before, "the connection left in a transaction was not handed out");
  });

  test("a session that cannot be reset takes its pool out of use, but another caller's running statement on it is not cut", async () => {
    const p = pools({ max: 2, statementTimeout: 20_000 });
    const victim = p.use("postgres", "app", undefined, {}, (s) =>
      runSingle(s, { query: "insert into t select 'victim' from pg_sleep(6)" }, "json", { maxRows: 10, maxBytes: 1 << 20 }),
    );
    // Once the victim's statement runs (not a guessed 200 ms), its session is left in a transaction.
    await eventually(
      async () => (await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = 'app' and state = 'active' and query like 'insert into t select %'`)[0]!.n === 1,
      { what: "the victim's statement to run" },
    );
    await p.use("postgres", "app", undefined, {}, (s) => s.lease((conn) => query(conn, "begin")));
    const done = await victim;
    assert.equal(done.command, "INSERT");
    const [row] = await cluster.sql`select count(*)::int as n from t where v = 'victim'`;
    assert.equal(row!.n, 1);

  });

  test("pool creators each wait at most the queue timeout, not one after another", async () => {
    const p = pools({ max: 1, maxTotal: 2, queueTimeoutMs: 1000, statementTimeout: 10_000 });
    const app = testApp(p, "host all all all trust\n", { caller: { anonymousUser: undefined } });
    const ask = (user: string, query: string) =>
      app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic(user) }, body: JSON.stringify({ query }) });
    const holders = [ask("r1", "select pg_sleep(4)"), ask("r2", "select pg_sleep(4)")];
    // A holder's statement runs (not a guessed 300 ms). Only one does: with maxTotal 2 the
    // second holder waits for room like the others (as it did after the old 300 ms).
    await eventually(
      async () => (await cluster.sql`select count(*)::int as n from pg_stat_activity where usename in ('r1', 'r2') and state = 'active' and query = 'select pg_sleep(4)'`)[0]!.n >= 1,
      { what: "a holder's statement to run" },
    );
    const started = Date.now();
    const waits = await Promise.all(["r3", "r4", "app", "hijack"].map(async (u) => {
      const res = await ask(u, "select 1");
      return { status: res.status, ms: Date.now() - started };
    }));
    for (const w of waits) assert.equal(w.status, 503);
    assert.ok(Math.max(...waits.map((w) => w.ms)) < 2500, JSON.stringify(waits));
    await Promise.all(holders);
  });

  test("a COPY that slipped past the refusal is ended with its session, and the process lives on", async () => {
    const p = pools({ max: 1 });
    await cluster.sql`grant insert on t to app`;
    for (const query of ["copy t from stdin", "copy (select 1) to stdout"]) {
      // runSingle directly: the request parser would refuse it before it got here.
      await assert.rejects(
        p.use("postgres", "app", undefined, {}, (s) => runSingle(s, { query }, "json", { maxRows: 10, maxBytes: 1 << 20 })),
        (e: any) => e.code === "0A000",
      );
      assert.ok(typeof (await pidOf(p, "app")) === "number", "the pool answers again");
    }
  });

  test("a statement that raises 28P01 is not taken for a rotated password and run again", async () => {
    let refreshed = 0;
    const p = new Pools(
      { host: "127.0.0.1", port: cluster.port, max: 1, maxTotal: 10, idleTimeout: 5, connectTimeout: 5, maxLifetime: 60, statementTimeout: 5000 },
      { password: (role) => (role === "rotated" ? "configured-pw" : undefined), alternatives: async () => (refreshed++, ["configured-pw"]), prefer: () => {} },
    );
    opened.push(p);
    await assert.rejects(
      p.use("postgres", "rotated", undefined, {}, (s) => runSingle(s, { query: "call raise_28p01()" }, "json", { maxRows: 10, maxBytes: 1 << 20 })),
      (e: any) => e.code === "28P01",
    );
    const [row] = await cluster.sql`select count(*)::int as n from t where v = 'once'`;
    assert.equal(row!.n, 1, "ran once");
    assert.equal(refreshed, 0);
  });
});
