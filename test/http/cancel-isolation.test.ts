// A CancelRequest lands on a backend process, not on a statement: one sent
// for a statement that finishes before it arrives would cancel whatever that
// connection runs next, another caller's statement. Cancels the gateway sends
// (a response limit reached, a caller gone) must only ever end their own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GatewayError } from "../../lib/errors.ts";
import { runSingle } from "../../lib/query/run.ts";
import type { Session } from "../../lib/upstream/session.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { executeOf, startPgProxy } from "../harness/tcp-proxy.ts";
import { testPools } from "./deps.ts";

describe("cancels end only their own statement", () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster();
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    await cluster?.stop();
  });

  // Deterministic: a proxy between the pool and PostgreSQL holds each CancelRequest back until
  // the next statement on its backend has started (its Execute passed on: then the cancel lands
  // on it, as after a slow network), or HOLD_MS passes. The next caller asks while the cancel is held;
  // the gateway must not start anything on that backend until the cancel has landed.
  const HOLD_MS = 1500;
  const triggers = [
    {
      name: "a result past the row limit, finished before its cancel arrives",
      run: (session: Session) => runSingle(session, { query: "select g from generate_series(1, 40) g" }, "json", { maxRows: 10, maxBytes: 1 << 20 }),
      started: async () => true,
      expect: (outcome: unknown) => {
        assert.ok(outcome instanceof GatewayError, String(outcome));
        assert.equal(outcome.code, "53400");
      },
    },
    (() => {
      const gone = new AbortController();
      const marker = `select pg_sleep(0.3) /* gone-${Date.now()} */`;
      return {
        name: "a caller gone while its statement runs, finished before its cancel arrives",
        run: (session: Session) => runSingle(session, { query: marker }, "json", { maxRows: 10, maxBytes: 1 << 20 }, () => gone.signal),
        // The caller leaves once the statement runs on the server, so that a cancel is sent.
        started: async () => {
          const [row] = await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where query = ${marker} and state = 'active'`;
          if (row!.n !== 1) return false;
          gone.abort();
          return true;
        },
        // It finished before its cancel landed: its rows, or the cancel's 57014, either is its own.
        expect: (outcome: unknown) => assert.ok(!(outcome instanceof Error) || (outcome instanceof GatewayError && outcome.code === "57014"), String(outcome)),
      };
    })(),
  ];

  for (const trigger of triggers) {
    test(`${trigger.name}: a cancel held until the next statement could start ends nothing else`, async () => {
      const proxy = await startPgProxy(cluster.port);
      const viaProxy = testPools(proxy.port, { max: 1, connectTimeout: 5, statementTimeout: 20_000 });
      try {
        await cluster.sql.unsafe("create table if not exists hits (tag text, pid int)");
        const tag = `victim-${Date.now()}`;
        const held = proxy.holdCancels({ until: executeOf(tag), atMostMs: HOLD_MS });
        const first = viaProxy.use("postgres", "postgres", undefined, {}, trigger.run).then((r) => r, (e: unknown) => e);
        await eventually(trigger.started, { what: "the first statement to run" });
        await eventually(() => held.length === 1, { what: "the CancelRequest to reach the proxy" });
        assert.equal(held[0]!.releasedAt, undefined, "the next caller asks while the cancel is held back");
        // The next caller's statement runs for a second: a cancel landing on it cannot miss it.
        const victim = await viaProxy
          .use("postgres", "postgres", undefined, {}, (session) =>
            runSingle(session, { query: `with slept as (select pg_sleep(1)) insert into hits select '${tag}', pg_backend_pid() from slept returning pid` }, "json", {
              maxRows: 10,
              maxBytes: 1 << 20,
            }),
          )
          .then((value) => ({ value }), (error: unknown) => ({ error }));
        trigger.expect(await first);
        const backend = proxy.sessions[0]?.pid;
        assert.equal(held[0]!.pid, backend, "the cancel targeted the pooled connection's backend");
        assert.ok("value" in victim, `the next statement was not cancelled: ${"error" in victim ? String(victim.error) : ""}`);
        assert.deepEqual(victim.value.rows, [{ pid: backend }], "and ran on that same backend");
        assert.equal(held[0]!.releasedBy, "timeout", "the next statement reached the backend only after the cancel was let go");
        const [ran] = await cluster.sql<{ n: number }[]>`select count(*)::int as n from hits where tag = ${tag}`;
        assert.equal(ran!.n, 1, "the next statement ran once");
      } finally {
        await viaProxy.close();
        await proxy.close();
      }
    });
  }

  test("a cancel the server never answers holds the pool for at most connect_timeout", async () => {
    // A TCP proxy that forwards the session but swallows the CancelRequest (a second
    // connection): accepted, never answered, never closed.
    const proxy = await startPgProxy(cluster.port);
    const viaProxy = testPools(proxy.port, { max: 1, connectTimeout: 2, statementTimeout: 1500 });
    try {
      const gone = new AbortController();
      const limits = { maxRows: 10, maxBytes: 1 << 20 };
      const marker = `select pg_sleep(5) /* swallowed-cancel-${Date.now()} */`;
      const outcome = viaProxy
        .use("postgres", "postgres", undefined, {}, (session) => runSingle(session, { query: marker }, "json", limits, () => gone.signal))
        .then(() => undefined, (e: unknown) => e);
      // The caller leaves once the statement runs (not a guessed 100 ms after the start, which
      // a slow connect could outlast: then no CancelRequest would be sent at all).
      await eventually(
        async () => (await cluster.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where query = ${marker} and state = 'active'`)[0]!.n === 1,
        { what: "the statement to run" },
      );
      // The pool's one connection is the session's: any later one is the CancelRequest's.
      proxy.swallowNew();
      const abortedAt = Date.now();
      gone.abort();
      const error = await outcome;
      const held = Date.now() - abortedAt;
      assert.ok(error instanceof GatewayError, String(error));
      assert.equal(error.code, "57014", "the statement ran on to its statement_timeout");
      assert.equal(proxy.accepted, 2, "a CancelRequest was sent");
      // The cancel is sent at the abort or later, and waited for connect_timeout (2 s): a lower bound timers keep.
      assert.ok(held >= 1900, `the connection was held while the cancel could still arrive (${held} ms)`);
      // Let go of after connect_timeout, not held for good (generous: only a hang, or a wait of
      // several connect_timeouts, reaches it; the next statement below also needs the one connection).
      assert.ok(held < 6000, `and let go of once connect_timeout passed (${held} ms)`);
      const next = await viaProxy.use("postgres", "postgres", undefined, {}, (session) => runSingle(session, { query: "select 1 as n" }, "json", limits));
      assert.deepEqual(next.rows, [{ n: 1 }]);
    } finally {
      await proxy.close();
      await viaProxy.close();
    }
  });
});
