// hbagate relies on three fields of a postgres.js query that are not part of
// its documented API (lib/cancel/cancel-requests.ts): `canceller` (the
// function that sends a CancelRequest, replaced by null once used), `state`
// (the backend it was handed to, set once it is on a connection) and `active`
// (it is the statement the server is running, not one queued behind it in the
// pipeline). postgres.js is pinned to an exact version for them; this test
// fails on a version where they moved, before a cancel reaches the wrong
// statement in production.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import postgres from "postgres";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { eventually } from "../harness/eventually.ts";

/** Read afresh (the assertions above narrow a field they compared). */
const stateOf = (q: Internals) => q.state;

interface Internals {
  canceller?: unknown;
  state?: { pid?: number } | null;
  active?: boolean;
}

const root = new URL("../../", import.meta.url);

describe("the postgres.js internals the cancel code reads", () => {
  let cluster: Cluster;
  let sql: postgres.Sql;
  before(async () => {
    cluster = await startCluster();
    sql = postgres({ host: cluster.socketDir, port: cluster.port, user: "postgres", database: "postgres", max: 1, onnotice: () => {} });
  });
  after(async () => {
    await sql?.end({ timeout: 0 });
    await cluster?.stop();
  });

  test("package.json pins postgres to the exact version installed", () => {
    const wanted = (JSON.parse(readFileSync(new URL("package.json", root), "utf8")) as { dependencies: Record<string, string> }).dependencies.postgres;
    const installed = (JSON.parse(readFileSync(new URL("node_modules/postgres/package.json", root), "utf8")) as { version: string }).version;
    assert.match(wanted ?? "", /^\d+\.\d+\.\d+$/, "a range would let npm install a version whose internals differ");
    assert.equal(installed, wanted);
  });

  test("a query has a canceller, no state before it is sent, the backend's pid and active while it runs, and a queued one is not active", async () => {
    const pid = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
    const running = sql`select pg_sleep(0.3)`;
    const queued = sql`select 1`;
    const r = running as unknown as Internals;
    const q = queued as unknown as Internals;
    assert.equal(typeof r.canceller, "function");
    assert.equal(r.state, null, "not on a connection yet");
    const done = Promise.all([running, queued]);
    // Both are written at once (postgres.js pipelines); wait until the first one runs.
    await eventually(() => r.state != null, { intervalMs: 5, what: "the first statement to be on its connection" });
    assert.equal(stateOf(r)?.pid, pid);
    assert.equal(r.active, true);
    assert.equal(q.state?.pid, pid, "pipelined on the same connection");
    assert.notEqual(q.active, true, "queued behind the running statement");
    await done;
  });

  test("calling the canceller sends a CancelRequest that ends the running statement", async () => {
    const running = sql`select pg_sleep(30)`;
    const r = running as unknown as Internals & { canceller: (q: object) => Promise<void> };
    const outcome = running.then(
      () => "finished",
      (err: { code?: string }) => err.code,
    );
    await eventually(() => r.active === true, { intervalMs: 5, what: "the statement to run" });
    await r.canceller(running);
    assert.equal(await outcome, "57014");
  });
});
