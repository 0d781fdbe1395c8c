// red14: WireConnection.run re-runs a prepared statement whenever its error's
// message is "cached plan must not change result type" and the connection is
// idle afterwards, taking that as "nothing of it ran". But that message also
// comes from INSIDE a statement that already did work: a procedure that writes
// and COMMITs, then EXECUTEs a SQL-prepared statement whose table changed.
// The whole CALL is sent again: its committed write happens twice for one
// request. Promise broken: "Exactly once, or say so: a write is never run twice".
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SharedRole } from "./shared-role.ts";
import { committingStalePlanProcedure } from "../harness/stale-plan.ts";

describe("red14: the stale-plan retry runs a write twice", () => {
  let shared: SharedRole;
  before(async () => {
    shared = await SharedRole.start(`
      create table log (n serial primary key);
      grant all on log to app; grant all on sequence log_n_seq to app;
      ${committingStalePlanProcedure("record_once", "log")}
      grant execute on procedure record_once to app;
    `);
  });
  after(() => shared?.stop());

  const rows = async () => Number((await shared.cluster.sql`select count(*)::int as n from log`)[0]!.n);

  test("each request's CALL writes once, prepared or not", async () => {
    // First sighting: unprepared. Second: prepared as hbagate_N, and then retried on the stale-plan message.
    for (let i = 1; i <= 2; i++) {
      const before = await rows();
      const r = await shared.post({ query: "call record_once()" });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, "0A000");
      assert.equal((await rows()) - before, 1, `request ${i}: the procedure's committed insert ran ${(await rows()) - before} times for one request`);
    }
  });
});
