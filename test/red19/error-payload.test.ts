// red19: Lambda's 6 MB payload limit is enforced on 200 bodies only. An error
// whose text PostgreSQL builds from the caller's data (invalid input syntax
// quotes the whole value) is returned unmeasured: a ~7 MB error body, which
// Lambda refuses with a bare 502 instead of the gateway's 507 / 53400.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { LAMBDA_RESPONSE_PAYLOAD_BYTES } from "../../lib/config/settings.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { basic, buildHandler, functionUrlEvent, importHandler, payloadBytes, type Handler } from "../lambda/events.ts";

describe("red19: error bodies and Lambda's payload limit", () => {
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

  test("/v1: an error quoting 7 MB of the caller's value stays within Lambda's payload", async () => {
    const r = await run("select repeat('x', 7000000)::int");
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
