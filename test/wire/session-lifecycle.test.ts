// How sessions end: a client's Terminate ends its session even where the
// upstream keeps its side open (the embedded PGlite's socket server does), and
// stopping the gateway ends open sessions with PostgreSQL's shutdown error
// instead of waiting on them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Client } from "@neondatabase/serverless";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { pointNeonAt, RawSession } from "../harness/sessions.ts";
import { within } from "../../lib/upstream/within.ts";

describe("how sessions end", () => {
  test("Neon's client.end() resolves against the embedded PGlite, and stopping the gateway ends an open session with 57P01", { timeout: 60_000 }, async () => {
    // No upstream configured: `npm start`'s embedded PGlite, trust from loopback.
    const gateway = await startNodeGateway(nodeSettings({ HBAGATE_PORT: "0" }));
    const authority = new URL(gateway.urls[0]!).host;
    let stopped = false;
    try {
      pointNeonAt({ authority } as never);
      const client = new Client("postgresql://postgres:unused@127.0.0.1/postgres");
      await client.connect();
      assert.deepEqual((await client.query("select 41 + $1::int as n", [1])).rows, [{ n: 42 }]);
      await within(client.end(), 5000, () => assert.fail("client.end() did not resolve: the session outlived the client's Terminate"));

      const open = new RawSession(`ws://${authority}/v2`);
      await open.login({ user: "postgres", database: "postgres" });
      await within(gateway.close(), 5000, () => assert.fail("the gateway's close waited on an open session"));
      stopped = true;
      const e = await open.error();
      assert.equal(e?.code, "57P01");
      assert.equal(e?.message, "terminating connection due to administrator command");
    } finally {
      if (!stopped) await gateway.close();
    }
  });
});
