// red14: /v1 answers a SELECT of a deeply nested json/jsonb value (PostgreSQL
// returns it without complaint) with 502 08007 "the connection to the database
// was lost while the request was on it: it may or may not have taken effect".
// Nothing was lost: measuring the parsed value (JSON.stringify in jsonLength,
// inside WireConnection's data handler) overflows the stack, and the handler
// takes any exception as a reason to cut the connection. A read is reported as
// of unknown outcome, and any caller can cut pooled connections at will.
// Promise broken: errors are structured with the right SQLSTATE; 08007 only
// for a connection actually lost after the statement was sent.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SharedRole } from "./shared-role.ts";

describe("red14: deeply nested JSON in a result", () => {
  let shared: SharedRole;
  before(async () => {
    shared = await SharedRole.start();
  });
  after(() => shared?.stop());

  for (const type of ["json", "jsonb"]) {
    test(`a SELECT of a ${type} nested 10000 deep is not answered as a lost connection`, async () => {
      const pid = (await shared.post({ query: "select pg_backend_pid() as pid" })).body.rows[0].pid;
      const r = await shared.post({ query: `select (repeat('[', 10000) || repeat(']', 10000))::${type} as j` });
      assert.notEqual(r.body.error?.code, "08007", `a read answered as of unknown outcome: ${JSON.stringify(r.body)}`);
      assert.ok(r.status < 500, JSON.stringify(r.body));
      const after = (await shared.post({ query: "select pg_backend_pid() as pid" })).body.rows[0].pid;
      assert.equal(after, pid, "the pooled connection was cut by a caller's SELECT");
    });
  }
});
