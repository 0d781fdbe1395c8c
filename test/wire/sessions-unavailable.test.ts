// Where sessions cannot be had, /v2 says so: on AWS Lambda (a function URL
// does not upgrade a request) and on a Node server with sessions turned off;
// a plain GET asks for the upgrade.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { buildHandler, errorOf, functionUrlEvent, importHandler } from "../lambda/events.ts";
import { RawSession, startSessionGateway } from "../harness/sessions.ts";

describe("sessions where they are not available", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  test("Lambda: /v2 answers 0A000 naming the Node server as where sessions are", async () => {
    const bundle = await buildHandler();
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, "host all all 0.0.0.0/0 trust\n");
    Object.assign(process.env, { HBAGATE_HBA_FILE: hba, HBAGATE_UPSTREAM_HOST: "127.0.0.1", HBAGATE_UPSTREAM_PORT: String(cluster.port), HBAGATE_UPSTREAM_SSL: "disable" });
    const log = console.log;
    console.log = () => {};
    try {
      const handler = await importHandler(bundle);
      const res = await handler(functionUrlEvent(undefined, { path: "/v2", headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } }));
      assert.equal(res.statusCode, 400);
      const e = errorOf(res);
      assert.equal(e?.code, "0A000");
      assert.equal(e?.message, "interactive sessions are not available here");
      assert.match(JSON.parse(res.body).error.hint, /Lambda/);
    } finally {
      console.log = log;
    }
  });

  test("Node with HBAGATE_SESSIONS_MAX=0: the upgrade is refused; with sessions on, a GET without upgrade is told to upgrade", async () => {
    const off = await startSessionGateway("host all all 127.0.0.1/32 trust\n", cluster.port, { HBAGATE_SESSIONS_MAX: "0" });
    try {
      await assert.rejects(new RawSession(off.wsUrl).opened, (e: { status?: number }) => e.status === 400);
    } finally {
      await off.close();
    }
    const on = await startSessionGateway("host all all 127.0.0.1/32 trust\n", cluster.port);
    try {
      const res = await fetch(`http://${on.authority}/v2`);
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { code: string; message: string } }).error.message, "a session needs a WebSocket upgrade");
    } finally {
      await on.close();
    }
  });
});
