// One caller cannot multiply pools or lift its own time bound: startup
// parameters are settings of the request (one pool per database and role),
// and every request has the gateway's own deadline, whatever the session's
// statement_timeout says. Against a real PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";
import { query } from "../harness/wire.ts";

describe("fair use of the upstream", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port, { max: 1, statementTimeout: 0 });
    app = testApp(pools, "host all all all trust\n", { requestTimeoutMs: 500 });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  async function neon(query: string, parameters = "") {
    const res = await app.request("/sql", {
      method: "POST",
      headers: { "content-type": "application/json", "neon-connection-string": `postgresql://app@gw.example/postgres${parameters}` },
      body: JSON.stringify({ query, params: [] }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  }

  test("distinct application_name values share one pool; each request sees only its own", async () => {
    for (let i = 0; i < 10; i++) {
      const r = await neon("select current_setting('application_name') as a", `?application_name=app-${i}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.rows, [[`app-${i}`]]);
    }
    assert.equal(pools.size, 1, "one pool for (postgres, app)");
    const plain = await neon("select current_setting('application_name') as a");
    assert.deepEqual(plain.body.rows, [["hbagate"]], "the gateway's own, not the last caller's");
  });

  test("options: -c settings apply to the request; anything else is refused", async () => {
    const r = await neon("select current_setting('search_path') as s", "?options=-c%20search_path%3Dcustom");
    assert.deepEqual(r.body.rows, [["custom"]]);
    assert.notDeepEqual((await neon("select current_setting('search_path') as s")).body.rows, [["custom"]]);
    const bad = await neon("select 1", "?options=--single");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, "08P01");
  });

  test("a lifted statement_timeout does not lift the gateway's deadline", async () => {
    const started = Date.now();
    const res = await app.request("/v1/postgres/sql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic("app") },
      body: JSON.stringify({ queries: [{ query: "set local statement_timeout = 0" }, { query: "select pg_sleep(30)" }] }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 504);
    assert.equal(body.error.code, "57014");
    assert.match(body.error.message, /request timeout/);
    assert.ok(Date.now() - started < 10_000, "cancelled near the deadline, not after the sleep");
    // Same for options: statement_timeout=0 set at startup.
    const r = await neon("select pg_sleep(30)", "?options=-c%20statement_timeout%3D0");
    assert.equal(r.status, 504);
    assert.equal(r.body.code, "57014");
    // The one connection is free and clean again.
    const after = await neon("select current_setting('statement_timeout') as t");
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.rows, [["0"]]);
    const [row] = await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = 'app' and query like 'select pg_sleep%' and state = 'active'`;
    assert.equal(row!.n, 0, "nothing still sleeping upstream");
  });
});

// Connections are counted as they open and close, bounded in total, per role
// across databases and per caller identity, with a reserve for verification
// logins. Bounds that PostgreSQL enforces too (a role's CONNECTION LIMIT) make
// an overshoot an error rather than a sample that might miss it.
describe("connections counted one by one", () => {
  let cluster: Cluster;
  const opened: Pools[] = [];
  const make = (overrides: Parameters<typeof testPools>[1]) => {
    const p = testPools(cluster.port, { statementTimeout: 0, queueTimeoutMs: 5000, ...overrides });
    opened.push(p);
    return p;
  };

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role wide login connection limit 2;
      create role busy login; create role flood login; create role other login; create role cycler login; create role waiter login; create role leaver login; create role lost login; create table t_left (id int); grant all on t_left to leaver; create role multi login; create table t_deadline (id int); grant all on t_deadline to waiter; create role pw login password 'pw-secret';
    `);
    for (const d of ["d1", "d2"]) await cluster.sql.unsafe(`create database ${d}`);
    for (let i = 1; i <= 8; i++) await cluster.sql.unsafe(`create role u${i} login`);
    await cluster.writeHba("host all pw 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    for (const p of opened) await p.close();
    await cluster?.stop();
  });

  const backends = async (where: string) => (await cluster.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from pg_stat_activity where ${where}`))[0]!.n;
  const sleep = (pools: Pools, database: string, user: string, seconds: number, identity?: string, during?: () => void) =>
    pools.use(database, user, undefined, {}, (s) =>
      s.lease(async (conn) => {
        during?.();
        try {
          await query(conn, `select pg_sleep(${seconds})`);
        } finally {
          during?.();
        }
      }),
      identity,
    );

  test("eight roles' pools of one connection each are eight connections, not eight maximums", async () => {
    const pools = make({ max: 10, maxTotal: 12, loginReserve: 0 });
    for (let i = 1; i <= 8; i++) await sleep(pools, "postgres", `u${i}`, 0);
    // None was closed to make room for the next: every role's connection is still there.
    assert.equal(await backends("usename like 'u_'"), 8);
    assert.equal(pools.openConnections, 8);
  });

  test("a role's connections are bounded across its databases (CONNECTION LIMIT 2 upstream: an overshoot would fail)", async () => {
    const pools = make({ max: 5, maxPerRole: 2, maxTotal: 20 });
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => sleep(pools, i % 2 ? "d1" : "d2", "wide", 0.05)));
    const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason?.message));
    assert.deepEqual(failed, []);
  });

  test("one role flooding its pool leaves room for another role", async () => {
    const pools = make({ max: 3, maxPerRole: 2, maxTotal: 4, loginReserve: 1, queueTimeoutMs: 2000 });
    let pending = 0;
    const flood = Array.from({ length: 20 }, () => {
      pending++;
      return sleep(pools, "postgres", "busy", 0.3).finally(() => pending--);
    });
    await eventually(async () => (await backends("usename = 'busy' and query like '%pg_sleep%' and state = 'active'")) >= 2, { what: "two of the flood's statements to run" });
    await sleep(pools, "postgres", "other", 0);
    assert.ok(pending > 10, `served while the flood still waits (${pending} pending)`);
    await Promise.allSettled(flood);
  });

  test("verification logins have a reserve that one role's queries cannot take", async () => {
    const pools = make({ max: 4, maxTotal: 4, loginReserve: 2, queueTimeoutMs: 2000 });
    let pending = 0;
    const flood = Array.from({ length: 12 }, () => {
      pending++;
      return sleep(pools, "postgres", "flood", 0.3).finally(() => pending--);
    });
    await eventually(async () => (await backends("usename = 'flood' and query like '%pg_sleep%' and state = 'active'")) >= 2, { what: "two of the flood's statements to run" });
    const outcome = await pools.login("postgres", "pw", "pw-secret");
    assert.equal(outcome.ok, true);
    assert.ok(pending > 6, `logged in while the flood still waits (${pending} pending)`);
    assert.equal(await backends("usename = 'flood'"), 2, "the queries kept to the connections not reserved");
    await Promise.allSettled(flood);
  });

  test("one caller identity holds at most its share of a role's connections; another identity goes ahead", async () => {
    const pools = make({ max: 4, maxPerIdentity: 2, maxTotal: 20 });
    let alicePeak = 0;
    let pending = 0;
    let inside = 0;
    const aliceRun = () => {
      pending++;
      let entered = false;
      return sleep(pools, "postgres", "busy", 0.2, "alice", () => {
        if (!entered) {
          entered = true;
          inside++;
          alicePeak = Math.max(alicePeak, inside);
        } else inside--;
      }).finally(() => pending--);
    };
    const flood = Array.from({ length: 8 }, aliceRun);
    await eventually(() => inside >= 2, { intervalMs: 5, what: "two of alice's requests to hold connections" });
    await sleep(pools, "postgres", "busy", 0, "bob");
    assert.ok(pending > 4, `bob was served while alice's requests still wait (${pending} pending)`);
    await Promise.all(flood);
    assert.equal(alicePeak, 2);
  });

  test("a waiter in another pool is served while a busy pool keeps cycling its connections", async () => {
    // Two places for requests: the busy role takes both, over and over; the other role's one
    // request must get the next place that frees, not wait behind the busy pool's newcomers.
    const pools = make({ max: 2, maxTotal: 3, loginReserve: 1, queueTimeoutMs: 4000 });
    let running = true;
    let cycles = 0;
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        await sleep(pools, "postgres", "cycler", 0.05).catch(() => {});
        cycles++;
      }
    });
    await eventually(async () => (await backends("usename = 'cycler'")) >= 2, { what: "the busy pool to hold both places" });
    const started = cycles;
    await sleep(pools, "postgres", "waiter", 0);
    const during = cycles - started;
    running = false;
    await Promise.all(loops);
    assert.ok(during < 20, `served after ${during} of the busy pool's requests, not after the queue timeout`);
  });

  test("one identity's bound holds across the role's databases", async () => {
    const pools = make({ max: 4, maxPerRole: 4, maxPerIdentity: 2, maxTotal: 20 });
    let inside = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => {
        let entered = false;
        return sleep(pools, i % 2 ? "d1" : "d2", "multi", 0.2, "arn:aws:sts::123456789012:assumed-role/App/alice", () => {
          if (!entered) {
            entered = true;
            peak = Math.max(peak, ++inside);
          } else inside--;
        });
      }),
    );
    assert.equal(peak, 2);
  });

  test("the request deadline covers the wait for a connection: 57014, and the statement never runs", async () => {
    const pools = make({ max: 1, queueTimeoutMs: 5000 });
    const app = testApp(pools, "host all all all trust\n", { requestTimeoutMs: 300 });
    // Someone else holds the one connection for a while.
    let release!: () => void;
    const held = pools.use("postgres", "waiter", undefined, {}, (s) => s.lease(() => new Promise<void>((r) => (release = r))));
    await eventually(() => release !== undefined, { intervalMs: 5, what: "the connection to be held" });
    const started = Date.now();
    const res = await app.request("/v1/postgres/sql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic("waiter") },
      body: JSON.stringify({ query: "insert into t_deadline values (1)" }),
    });
    const waited = Date.now() - started;
    const body = (await res.json()) as { error: { code: string } };
    release();
    await held;
    assert.equal(res.status, 504);
    assert.equal(body.error.code, "57014");
    assert.ok(waited < 4000, `answered after ${waited} ms, not after the queue timeout`);
    // Deliberately a fixed grace: an insert that must never run cannot be polled for.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await cluster.sql`select count(*)::int as n from t_deadline`)[0]!.n, 0, "the insert never ran");
  });

  test("a caller who leaves while waiting, even briefly, never has its statement run", async () => {
    const pools = make({ max: 1, queueTimeoutMs: 5000 });
    const app = testApp(pools, "host all all all trust\n");
    for (let i = 0; i < 5; i++) {
      let release!: () => void;
      const held = pools.use("postgres", "leaver", undefined, {}, (s) => s.lease(() => new Promise<void>((r) => (release = r))));
      await eventually(() => release !== undefined, { intervalMs: 2, what: "the connection to be held" });
      const gone = new AbortController();
      const answer = Promise.resolve(
        app.request("/v1/postgres/sql", {
          method: "POST",
          signal: gone.signal,
          headers: { "content-type": "application/json", authorization: basic("leaver") },
          body: JSON.stringify({ query: "insert into t_left values (1)" }),
        }),
      ).then((r) => r.status, () => 0);
      // The point: the caller leaves briefly after asking, while it waits for the connection.
      await new Promise((r) => setTimeout(r, 3));
      gone.abort();
      // The connection frees well before the wait would look at the caller (20 ms).
      await new Promise((r) => setTimeout(r, 8));
      release();
      await held;
      await answer;
    }
    // Deliberately a fixed grace: an insert that must never run cannot be polled for.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await cluster.sql`select count(*)::int as n from t_left`)[0]!.n, 0, "no abandoned insert ran");
  });

  test("a connection lost under a statement gives its place back at once", async () => {
    const pools = make({ max: 1, queueTimeoutMs: 2000 });
    const running = sleep(pools, "postgres", "lost", 5).catch((e: { code?: string }) => e.code);
    await eventually(async () => (await backends("usename = 'lost' and query like '%pg_sleep%' and state = 'active'")) >= 1, { what: "the statement to run" });
    await cluster.sql`select pg_terminate_backend(pid) from pg_stat_activity where usename = 'lost'`;
    await running;
    // The next request gets the place (its wait is bounded by 2 s).
    await sleep(pools, "postgres", "lost", 0);
  });

  test("a connection past its lifetime is not lent again, even when it sat idle", async () => {
    const pools = make({ max: 1, maxLifetime: 1, idleTimeout: 60 });
    const pid = () => pools.use("postgres", "lost", undefined, {}, (s) => s.lease(async (conn) => ((await query(conn, "select pg_backend_pid() as p")) as unknown as [{ p: string }])[0].p));
    const first = await pid();
    // Time itself, the thing under test: past the connection's one-second lifetime.
    await new Promise((r) => setTimeout(r, 1200));
    assert.notEqual(await pid(), first);
  });
});

