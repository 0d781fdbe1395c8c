// Over a real socket: pool bounds under 200 concurrent requests, and a caller
// who disconnects cancels the statement on the server.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { nodePeer, startListeners, type Listening } from "../../lib/node/listeners.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { runBatch, runSingle } from "../../lib/query/run.ts";
import { GatewayError } from "../../lib/errors.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startPgProxy } from "../harness/tcp-proxy.ts";
import { testPools } from "./deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

describe("pools under load and disconnects", () => {
  let cluster: Cluster;
  let pools: Pools;
  let listening: Listening;
  let base: string;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role r1 login; create role r2 login; create role r3 login");
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    // Three roles of 3 connections each do not fit in 6 (4 for requests, 2 kept for logins): idle connections close to make room.
    pools = testPools(cluster.port, { max: 3, maxTotal: 6, statementTimeout: 20_000 });
    const app = testApp(pools, "host all all all trust\n", { maxBodyBytes: 1 << 16, peer: nodePeer });
    listening = await startListeners(app.fetch, { host: "127.0.0.1", port: 0, unixSocket: undefined, tls: undefined });
    base = listening.urls[0]!;
  });
  after(async () => {
    await listening?.close();
    await pools?.close();
    await cluster?.stop();
  });

  const backends = async () =>
    (await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where usename in ('r1', 'r2', 'r3')`)[0]!.n;
  const active = async (user: string, query: string) =>
    (await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where usename = ${user} and query = ${query} and state = 'active'`)[0]!.n;

  test("200 concurrent requests all succeed and never exceed the connection bounds", async () => {
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await backends());
        await new Promise((r) => setTimeout(r, 5)); // the sampling interval, not a wait for anything
      }
    })();
    const statuses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        fetch(`${base}/v1/postgres/sql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: basic(`r${(i % 3) + 1}`) },
          body: JSON.stringify({ query: "select pg_sleep(0.01), $1::int as i", params: [i] }),
        }).then(async (r) => [r.status, ((await r.json()) as { rows?: { i: number }[] }).rows?.[0]?.i] as const),
      ),
    );
    sampling = false;
    await sampler;
    statuses.forEach(([status, i], n) => {
      assert.equal(status, 200);
      assert.equal(i, n);
    });
    assert.ok(peak > 0, "the sampler saw the load");
    // Connections are counted one by one as they open and until they have closed.
    assert.ok(peak <= 6, `peak ${peak} upstream connections`);
    assert.ok(pools.openConnections <= 6, `${pools.openConnections} connections counted`);
  });

  test("no room for another pool: the request waits, then gets 503 53300", async () => {
    const tight = testPools(cluster.port, { max: 1, maxTotal: 1, connectTimeout: 1, statementTimeout: 20_000 });
    const app = testApp(tight, "host all all all trust\n");
    const ask = (user: string, query: string) =>
      app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic(user) }, body: JSON.stringify({ query }) });
    const busy = ask("r1", "select pg_sleep(2)");
    await eventually(async () => (await active("r1", "select pg_sleep(2)")) === 1, { what: "r1's statement to run" });
    const refused = await ask("r2", "select 1");
    assert.equal(refused.status, 503);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "53300");
    assert.equal((await busy).status, 200);
    // Once the first pool is idle it makes room.
    assert.equal((await ask("r2", "select 1")).status, 200);
    await tight.close();
  });

  test("a busy pool: waiting is bounded in count and time, then 503 53300", async () => {
    // The queue timeout and the busy statement are long enough that "at once" and "after the
    // timeout" are told apart by wide margins, and by order, not by tight wall-clock bounds.
    const QUEUE_TIMEOUT_MS = 1500;
    const small = testPools(cluster.port, { max: 1, maxTotal: 1, queueTimeoutMs: QUEUE_TIMEOUT_MS, maxQueue: 2, statementTimeout: 20_000 });
    const app = testApp(small, "host all all all trust\n");
    const finished: string[] = [];
    const ask = async (query: string, name = query) => {
      const started = Date.now();
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic("r1") }, body: JSON.stringify({ query }) });
      finished.push(name);
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code, ms: Date.now() - started };
    };
    const busy = ask("select pg_sleep(4)", "busy");
    await eventually(async () => (await active("r1", "select pg_sleep(4)")) === 1, { what: "the busy statement to run" });
    const [a, b, c] = await Promise.all([ask("select 1"), ask("select 1"), ask("select 1")]);
    const refused = [a!, b!, c!].sort((x, y) => x.ms - y.ms);
    assert.deepEqual(refused.map((r) => [r.status, r.code]), [[503, "53300"], [503, "53300"], [503, "53300"]]);
    // The queue holds two: the third is refused without waiting for the queue timeout.
    assert.ok(refused[0]!.ms < QUEUE_TIMEOUT_MS / 2, `the third waiter is refused at once (${refused[0]!.ms} ms)`);
    // The two queued give up at the queue timeout (a lower bound timers keep), not when the connection frees.
    assert.ok(refused[1]!.ms >= QUEUE_TIMEOUT_MS - 50, `waiters wait out the queue timeout (${refused[1]!.ms} ms)`);
    assert.deepEqual(finished.indexOf("busy"), -1, "the waiters gave up while the busy statement still held the connection");
    assert.equal((await busy).status, 200);
    assert.equal((await ask("select 1")).status, 200);
    await small.close();
  });

  test("a caller who disconnects cancels the running statement; the same connection serves the next request", async () => {
    // A pool of one: the next request must be served by the very connection the cancel landed
    // on (a pool of three could answer with another one and hide a connection left broken).
    const single = testPools(cluster.port, { max: 1, maxTotal: 3, statementTimeout: 20_000 });
    const own = await startListeners(testApp(single, "host all all all trust\n", { peer: nodePeer }).fetch, { host: "127.0.0.1", port: 0, unixSocket: undefined, tls: undefined });
    try {
      const url = `${own.urls[0]}/v1/postgres/sql`;
      const marker = `select pg_sleep(30) /* disconnect-${Date.now()} */`;
      const req = httpRequest(url, { method: "POST", headers: { "content-type": "application/json", authorization: basic("r1") } });
      req.on("error", () => {});
      req.end(JSON.stringify({ query: marker }));
      const running = async () =>
        (await cluster.sql<{ pid: number }[]>`select pid from pg_stat_activity where query = ${marker} and state = 'active'`).map((r) => r.pid);
      await eventually(async () => (await running()).length === 1, { what: "the statement to start" });
      const [pid] = await running();
      req.destroy();
      // Bounded below the pool's 20 s statement_timeout (and the 30 s sleep): only a cancel ends it this soon.
      await eventually(async () => (await running()).length === 0, { timeoutMs: 15_000, what: "the server to stop running the statement" });
      // The connection went back to the pool healthy: the next request runs on that same backend,
      // which is left idle (not in a transaction), and no other connection was opened for it.
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: basic("r1") },
        body: '{"query":"select pg_backend_pid() as pid"}',
      });
      const body = (await res.json()) as { rows?: { pid: number }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual(body.rows, [{ pid }], "the backend the cancel landed on answered");
      const [after] = await cluster.sql<{ state: string }[]>`select state from pg_stat_activity where pid = ${pid!}`;
      assert.equal(after?.state, "idle");
      assert.equal(single.openConnections, 1, "no other connection was opened");
    } finally {
      await own.close();
      await single.close();
    }
  });

  test("a caller gone before the statement starts is still seen: the statement is cancelled, a batch stops", async () => {
    const gone = new AbortController();
    gone.abort(new Error("client went away"));
    const limits = { maxRows: 10, maxBytes: 1 << 20 };
    const started = Date.now();
    const single = await pools
      .use("postgres", "r3", undefined, {}, (session) => runSingle(session, { query: "select pg_sleep(30)" }, "json", limits, () => gone.signal))
      .then(() => undefined, (e: unknown) => e);
    assert.ok(single instanceof GatewayError, String(single));
    assert.equal(single.code, "57014");
    const batch = await pools
      .use("postgres", "r3", undefined, {}, (session) =>
        runBatch(session, [{ query: "select pg_sleep(30)" }, { query: "select 1" }], {}, "json", limits, () => gone.signal),
      )
      .then(() => undefined, (e: unknown) => e);
    assert.ok(batch instanceof GatewayError, String(batch));
    assert.equal(batch.code, "57014");
    assert.ok(Date.now() - started < 10_000, "neither waited for pg_sleep(30)");
  });

  test("a cancel that cannot reach the server does not take the process down", async () => {
    // A TCP proxy in front of PostgreSQL: once it stops accepting, the running session goes on,
    // but the CancelRequest (a new connection) is refused.
    const proxy = await startPgProxy(cluster.port);
    const viaProxy = testPools(proxy.port, { max: 1, statementTimeout: 1500 });
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => rejections.push(e);
    process.on("unhandledRejection", onRejection);
    try {
      const marker = `select pg_sleep(5) /* unreachable-cancel-${Date.now()} */`;
      const gone = new AbortController();
      const limits = { maxRows: 10, maxBytes: 1 << 20 };
      const outcome = viaProxy
        .use("postgres", "r1", undefined, {}, (session) => runSingle(session, { query: marker }, "json", limits, () => gone.signal))
        .then(() => undefined, (e: unknown) => e);
      const running = async () =>
        (await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where query = ${marker} and state = 'active'`)[0]!.n;
      await eventually(async () => (await running()) === 1, { what: "the statement to start" });
      // No wait for the gateway to start watching the caller (20 ms into the statement): gone
      // before that, the watch finds the signal already aborted and sends the same CancelRequest.
      proxy.refuseNew();
      gone.abort();
      const error = await outcome;
      assert.ok(error instanceof GatewayError, String(error));
      assert.equal(error.code, "57014", "the statement ran on to its statement_timeout");
      // Deliberately a fixed grace period: an absence cannot be polled for. (The failed
      // CancelRequest has settled already: the connection is held until it has.)
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(rejections, [], "no unhandled rejection from the failed CancelRequest");
    } finally {
      process.off("unhandledRejection", onRejection);
      await proxy.close();
      await viaProxy.close();
    }
  });
});
