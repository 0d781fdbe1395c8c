// Error bodies within Lambda's 6 MB payload (a red team found the limit
// enforced on 200 bodies only). PostgreSQL quotes the caller's own values in
// its messages (invalid input syntax for type integer: "xxxx…"), so a
// statement can make an error as large as its input; the gateway cuts each
// server error field at MAX_ERROR_FIELD_CHARS and says so, on every framing.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { LAMBDA_RESPONSE_PAYLOAD_BYTES } from "../../lib/config/settings.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { buildHandler, functionUrlEvent, importHandler, payloadBytes, type Handler } from "../lambda/events.ts";
import { basic } from "../harness/http.ts";

describe("error bodies within Lambda's payload limit", () => {
  let cluster: Cluster;
  let handler: Handler;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    const bundle = await buildHandler();
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, "hostssl all app 0.0.0.0/0 trust\n");
    Object.assign(process.env, {
      HBAGATE_HBA_FILE: hba,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      HBAGATE_UPSTREAM_SSL: "disable",
    });
    handler = await importHandler(bundle);
  });
  after(async () => {
    await cluster?.stop();
  });

  const run = (query: string, path = "/v1/postgres/sql") =>
    handler(
      functionUrlEvent(
        { query },
        path === "/sql"
          ? { path, headers: { "neon-connection-string": "postgresql://app@abc123.lambda-url.eu-west-1.on.aws/postgres" } }
          : { headers: { authorization: basic("app") } },
      ),
    );

  test("/v1: an error quoting 7 MB of the caller's value stays within Lambda's payload, its code and the start of its message kept", async () => {
    const r = await run("select repeat('x', 7000000)::int");
    const error = (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, "22P02");
    assert.match(error.message, /^invalid input syntax for type integer: "x{100}/);
    assert.match(error.message, /more characters cut by hbagate\)$/);
    assert.ok(
      payloadBytes(r) <= LAMBDA_RESPONSE_PAYLOAD_BYTES,
      `status ${r.statusCode}, payload ${payloadBytes(r)} bytes > ${LAMBDA_RESPONSE_PAYLOAD_BYTES}: Lambda answers a bare 502`,
    );
  });

  test("/sql (Neon): the same", async () => {
    const r = await run("select repeat('x', 7000000)::int", "/sql");
    assert.ok(payloadBytes(r) <= LAMBDA_RESPONSE_PAYLOAD_BYTES, `status ${r.statusCode}, payload ${payloadBytes(r)} bytes`);
  });

  test("/v1: 2 M quotes in an error (4 MB of body, 8 MB of payload once escaped)", async () => {
    const r = await run(`select repeat('"', 2000000)::int`);
    assert.ok(payloadBytes(r) <= LAMBDA_RESPONSE_PAYLOAD_BYTES, `status ${r.statusCode}, payload ${payloadBytes(r)} bytes`);
  });
});
