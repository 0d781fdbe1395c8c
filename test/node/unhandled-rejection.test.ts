// A rejection nobody handles (a bug in the gateway, or in a library under
// it) is logged as an error and the process serves on: one fault never takes
// every caller's connections down with it (Node's default ends the process).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startCliGateway, type CliGateway } from "../harness/gateway.ts";
import { eventually } from "../harness/eventually.ts";
import { basic } from "../harness/http.ts";

const fixture = fileURLToPath(new URL("./fixtures/plant-rejection.mjs", import.meta.url));

describe("an unhandled rejection in the gateway process", () => {
  let gw: CliGateway;
  before(async () => {
    // The embedded PGlite and the default rules: nothing else is needed to serve a query.
    gw = await startCliGateway({ NODE_OPTIONS: `--import=${fixture}` });
  });
  after(async () => {
    await gw?.stop();
  });

  test("is logged as an error, and the process goes on serving", async () => {
    gw.child.kill("SIGUSR2");
    const line = await eventually(() => gw.stderr.split("\n").find((l) => l.includes("unhandled rejection")), { what: "the log line" });
    const event = JSON.parse(line) as { level: string; error: string };
    assert.equal(event.level, "error");
    assert.match(event.error, /a rejection planted by the test/);
    assert.equal(gw.child.exitCode, null, "the process is still running");
    const res = await fetch(`${gw.url}/v1/postgres/sql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic("postgres") },
      body: JSON.stringify({ query: "select 42 as answer" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(((await res.json()) as { rows: unknown[] }).rows, [{ answer: 42 }]);
  });
});
