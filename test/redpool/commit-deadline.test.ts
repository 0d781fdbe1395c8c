// red14: in a batch (lib/query/run.ts runBatch) only the caller's statements run
// under `cancellable`; the gateway's own COMMIT does not. Work deferred to
// COMMIT (a deferred constraint trigger) then runs past the request's
// deadline, unbounded once the batch lifted statement_timeout, holding its
// pool connection all along. Promise broken: "every request has a deadline
// (HBAGATE_REQUEST_TIMEOUT_MS) after which its statement is cancelled".
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SharedRole } from "./shared-role.ts";

describe("red14: a batch's COMMIT outlives the request deadline", () => {
  let shared: SharedRole;
  before(async () => {
    shared = await SharedRole.start(`
      create table slow (id int);
      grant all on slow to app;
      create function slow_check() returns trigger language plpgsql as $$ begin perform pg_sleep(8); return null; end $$;
      create constraint trigger slow_at_commit after insert on slow deferrable initially deferred for each row execute function slow_check();
    `, { requestTimeoutMs: 1000 });
  });
  after(() => shared?.stop());

  test("the batch is cancelled at the deadline, COMMIT included", async () => {
    const started = Date.now();
    const r = await shared.post({ queries: [{ query: "set statement_timeout = 0" }, { query: "insert into slow values (1)" }] });
    const took = Date.now() - started;
    assert.ok(took < 4000, `answered after ${took} ms with a 1000 ms deadline: ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, "57014", JSON.stringify(r.body));
    // Cancelled inside COMMIT's deferred trigger: the batch rolled back, nothing of it kept.
    const [{ n } = { n: -1 }] = await shared.cluster.sql<{ n: number }[]>`select count(*)::int as n from slow`;
    assert.equal(n, 0);
  });
});
