// Exactly once, or say so: the upstream connection is cut at each step of a
// request (through a proxy that reads the protocol), and every answer is
// checked against what the database holds. A 200 is durable and happened
// once; a 502 08007 says the outcome is unknown (and it happened at most
// once); a 503 08006 says nothing took effect; nothing ever runs twice.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { clientConnectionsOpen } from "../harness/process.ts";
import { startPgProxy, statementContains, syncAfter, type CutRule, type PgProxy } from "../harness/tcp-proxy.ts";
import { postSql, testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";
import { query } from "../harness/wire.ts";

describe("exactly once, or say so", () => {
  let cluster: Cluster;
  let proxy: PgProxy;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;
  let next = 0;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login; create table ledger (id int, note text); grant all on ledger to app");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    proxy = await startPgProxy(cluster.port);
    // Unprepared: the proxy finds each statement by its text, which a prepared one sends only once per connection.
    pools = testPools(proxy.port, { max: 1, staleAfterMs: 60_000, preparedStatements: 0 });
    app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "app" } });
  });
  after(async () => {
    await pools?.close();
    await proxy?.close();
    await cluster?.stop();
  });

  async function post(body: unknown) {
    const r = await postSql(app, body);
    return { status: r.status, code: r.body.error?.code as string | undefined };
  }
  /**
   * Rows with this id, once the server has finished whatever it received: every connection
   * the proxy cut is closed on the server's side too, and the backend behind it has exited
   * (having finished, or rolled back, what it was given).
   */
  async function rows(id: number): Promise<number> {
    await eventually(
      async () => {
        if (proxy.sessions.some((s) => s.state === "cut")) return false;
        const ended = proxy.sessions.flatMap((s) => (s.state === "closed" && s.pid !== undefined ? [s.pid] : []));
        const [row] = await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where pid = any(${ended}::int[])`;
        return row!.n === 0;
      },
      { what: "the backends of the cut connections to exit" },
    );
    const [row] = await cluster.sql`select count(*)::int as n from ledger where id = ${id}`;
    return row!.n;
  }
  async function warm() {
    assert.equal((await post({ query: "select 1" })).status, 200);
  }
  async function cutAt(rule: CutRule, body: (id: number) => unknown) {
    await warm();
    const id = ++next;
    const fired = proxy.arm(rule);
    const answer = await post(body(id));
    await fired;
    return { answer, rows: await rows(id) };
  }
  const insert = (id: number) => ({ query: "insert into ledger values ($1, 'single')", params: [id] });
  const batch = (id: number) => ({ queries: [{ query: "insert into ledger values ($1, 'batch')", params: [id] }, { query: "select 1" }] });

  test("cut while idle, before anything is sent: the request runs on a new connection, once", async () => {
    await warm();
    proxy.cutAll();
    // The gateway notices the close (a real cut it would only find on writing: see the stale pool below):
    // its ends of the connections are no longer open (not even half-closed, CLOSE_WAIT).
    await eventually(() => clientConnectionsOpen(proxy.port, proxy.clientPorts) === 0, { what: "the gateway to notice the cut" });
    const id = ++next;
    const answer = await post(insert(id));
    assert.equal(answer.status, 200, JSON.stringify(answer));
    assert.equal(await rows(id), 1);
  });

  test("cut before the statement reached the server: 08007, and it did not happen", async () => {
    const r = await cutAt({ direction: "toServer", when: statementContains("insert into ledger"), forward: false }, insert);
    assert.deepEqual(r.answer, { status: 502, code: "08007" });
    assert.equal(r.rows, 0);
  });

  test("cut after the statement was sent: 08007, and it happened once", async () => {
    const r = await cutAt({ direction: "toServer", when: syncAfter("insert into ledger"), forward: true }, insert);
    assert.deepEqual(r.answer, { status: 502, code: "08007" });
    assert.equal(r.rows, 1);
  });

  test("cut after CommandComplete, before ReadyForQuery: 08007, and it happened once", async () => {
    const r = await cutAt({ direction: "toClient", when: (type, body) => type === "C" && body.toString().startsWith("INSERT"), forward: true }, insert);
    assert.deepEqual(r.answer, { status: 502, code: "08007" });
    assert.equal(r.rows, 1);
  });

  test("a batch cut before COMMIT was written: 08006 (503), and none of it happened", async () => {
    const r = await cutAt({ direction: "toServer", when: syncAfter("insert into ledger"), forward: true }, batch);
    assert.deepEqual(r.answer, { status: 503, code: "08006" });
    assert.equal(r.rows, 0);
  });

  test("a connection whose session ended is never reopened under a request: its next statement fails unsent", async () => {
    const direct = testPools(cluster.port, { max: 1, preparedStatements: 0 });
    try {
      const outcome = await direct.use("postgres", "app", undefined, {}, (session) =>
        session.lease(async (conn) => {
          const [{ p }] = (await query(conn, "select pg_backend_pid() as p")) as unknown as [{ p: string }];
          const [{ port }] = await cluster.sql<[{ port: number }]>`select client_port as port from pg_stat_activity where pid = ${p}`;
          await cluster.sql`select pg_terminate_backend(${p})`;
          // Between two statements of one request (a batch's), the driver sees the session end: its end
          // of the connection is no longer open (not even half-closed, CLOSE_WAIT).
          await eventually(() => clientConnectionsOpen(cluster.port, [port]) === 0, { what: "the driver to see the session end" });
          try {
            const [again] = (await query(conn, "select pg_backend_pid() as p")) as unknown as [{ p: string }];
            return `ran on a new session ${again.p} (was ${p})`;
          } catch (err) {
            return (err as { code?: string }).code;
          }
        }),
      );
      assert.equal(outcome, "HBAGATE_SESSION_ENDED");
    } finally {
      await direct.close();
    }
  });

  test("a connection past its lifetime is replaced between requests, never under a batch", async () => {
    const aged = testPools(cluster.port, { max: 1, maxLifetime: 1, preparedStatements: 0 });
    try {
      const agedApp = testApp(aged, "host all all all trust\n", { caller: { anonymousUser: "app" } });
      const id = ++next;
      const pid = async () => ((await postSql(agedApp, { query: "select pg_backend_pid() as p" })).body.rows as { p: number }[])[0]!.p;
      const first = await pid();
      const r = await postSql(agedApp, {
        queries: [
          { query: "insert into ledger values ($1, 'aged')", params: [id] },
          { query: "select pg_sleep(1.5)" },
          { query: "insert into ledger values ($1, 'aged')", params: [id] },
          { query: "select pg_backend_pid() as p" },
        ],
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.results[3].rows[0].p, first, "the whole batch on the session it began on");
      assert.equal(await rows(id), 2);
      assert.notEqual(await pid(), first, "replaced once the batch let go of it");
    } finally {
      await aged.close();
    }
  });

  test("a batch cut as COMMIT was written, before it reached the server: 08007, and it did not happen", async () => {
    const r = await cutAt({ direction: "toServer", when: statementContains("commit"), forward: false }, batch);
    assert.deepEqual(r.answer, { status: 502, code: "08007" });
    assert.equal(r.rows, 0);
  });

  test("a batch cut after COMMIT was sent: 08007, and it happened once", async () => {
    const r = await cutAt({ direction: "toServer", when: syncAfter("commit"), forward: true }, batch);
    assert.deepEqual(r.answer, { status: 502, code: "08007" });
    assert.equal(r.rows, 1);
  });

  test("a batch cut after the server's answer to COMMIT: 08007, and it happened once", async () => {
    const r = await cutAt({ direction: "toClient", when: (type, body) => type === "C" && body.toString().startsWith("COMMIT"), forward: true }, batch);
    assert.deepEqual(r.answer, { status: 502, code: "08007" });
    assert.equal(r.rows, 1);
  });

  test("after every cut the gateway answers again, and a stale pool's dead connection is found before a write", async () => {
    await warm();
    const stale = testPools(proxy.port, { max: 1, staleAfterMs: 0, preparedStatements: 0 });
    try {
      const other = testApp(stale, "host all all all trust\n", { caller: { anonymousUser: "app" } });
      const ask = async (body: unknown) => (await other.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).status;
      assert.equal(await ask({ query: "select 1" }), 200);
      // A silently dead connection: the proxy drops what the gateway sends next, once.
      const fired = proxy.arm({ direction: "toServer", when: (type) => type === "Q" || type === "P", forward: false });
      const id = ++next;
      assert.equal(await ask(insert(id)), 200, "the probe met the dead connection; the insert ran on a new one");
      await fired;
      assert.equal(await rows(id), 1);
      // A stale pool is probed before the write, never retried after it: cut after the server
      // committed, the insert is not run again.
      const cut = proxy.arm({ direction: "toClient", when: (type, body) => type === "C" && body.toString().startsWith("INSERT"), forward: true });
      const again = ++next;
      assert.equal(await ask(insert(again)), 502);
      await cut;
      assert.equal(await rows(again), 1);
    } finally {
      await stale.close();
    }
  });
});
