// red2: the session reset after a request is bounded by the pool's connect timeout
// (resetTimeoutMs = HBAGATE_CONNECT_TIMEOUT), not by the request's deadline, and
// the response waits for it. The reset deallocates every statement a caller
// prepared in SQL with one round trip per name (wire-connection.ts reset()), so a
// DO block that PREPAREs many statements (non-transactional: they stay even when
// the statement is cancelled at the deadline) makes its request answer only once
// the connect timeout has passed, holding the role's shared connection all along.
// Promise broken: "every request ends by HBAGATE_REQUEST_TIMEOUT_MS".
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SharedRole } from "./shared-role.ts";

describe("red2: a request's reset outlives the request deadline", () => {
  let shared: SharedRole;
  before(async () => {
    shared = await SharedRole.start("", { requestTimeoutMs: 1000, connectTimeout: 5 });
    assert.equal((await shared.post({ query: "select 1" })).status, 200);
  });
  after(() => shared?.stop());

  test("a request with many statements prepared in SQL answers by its deadline", async () => {
    const started = Date.now();
    const r = await shared.post({
      query: `do $$ begin for i in 1..60000 loop execute format('prepare red2_p%s as select 1', i); end loop; end $$`,
    });
    const took = Date.now() - started;
    assert.ok(took < 2500, `answered after ${took} ms with a 1000 ms deadline: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  });
});
