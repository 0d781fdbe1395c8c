// red14: WireConnection always encodes parameters and decodes results as
// UTF-8 and ignores ParameterStatus. A batch that sets client_encoding (not
// refused) makes the server read the gateway's UTF-8 parameters as LATIN1:
// 'é' is stored as 'Ã©', while the answer round-trips so the caller sees 'é'.
// Low severity (the caller changed the encoding itself), but the stored data
// is silently wrong: the gateway should refuse the change or follow it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SharedRole } from "./shared-role.ts";

describe("red14: client_encoding changed inside a batch", () => {
  let shared: SharedRole;
  before(async () => {
    shared = await SharedRole.start(` create table notes (body text); grant all on notes to app;`);
  });
  after(() => shared?.stop());

  test("a parameter is stored as sent, or the batch is refused", async () => {
    const r = await shared.post({ queries: [{ query: "set client_encoding = 'LATIN1'" }, { query: "insert into notes values ($1) returning body", params: ["é"] }] });
    if (r.status !== 200) return; // refused: fine
    assert.deepEqual(r.body.results[1].rows, [{ body: "é" }]);
    const [stored] = await shared.cluster.sql`select body from notes`;
    assert.equal(stored!.body, "é", `stored ${JSON.stringify(stored!.body)} while the caller was answered ${JSON.stringify(r.body.results[1].rows)}`);
  });
});
