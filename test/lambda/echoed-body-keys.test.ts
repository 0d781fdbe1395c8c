// A 400 that quotes the caller's unknown body key (a red team found it cut
// nowhere: a 3.8 MB key of quotes made a 7.6 MB Lambda payload, a bare 502).
// Every error field, the gateway's own too, is cut at MAX_ERROR_FIELD_CHARS.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { before, describe, test } from "node:test";
import { LAMBDA_RESPONSE_PAYLOAD_BYTES } from "../../lib/config/settings.ts";
import { MAX_ERROR_FIELD_CHARS } from "../../lib/errors.ts";
import { buildHandler, functionUrlEvent, importHandler, payloadBytes, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

describe("body keys echoed in a 400", () => {
  let handler: Handler;
  before(async () => {
    const bundle = await buildHandler();
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, "hostssl all all 0.0.0.0/0 scram-sha-256\n");
    Object.assign(process.env, {
      HBAGATE_HBA_FILE: hba,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: "1",
      HBAGATE_UPSTREAM_SSL: "disable",
      HBAGATE_MAX_BODY_BYTES: "4000000",
    });
    handler = await importHandler(bundle);
  });

  const body = () => `{"query":"select 1","${'\\"'.repeat(1_900_000)}":1}`;

  for (const path of ["/v1/postgres/sql", "/sql"]) {
    test(`${path}: no caller, no password, 3.8 MB of body: the 400 is cut like server errors and fits Lambda's payload`, async () => {
      const r = await handler(
        functionUrlEvent(body(), path === "/sql" ? { path, headers: { "neon-connection-string": "postgresql://app:pw@abc123.lambda-url.eu-west-1.on.aws/postgres" } } : { path, headers: { authorization: basic("nobody", "guess") } }),
      );
      const message = (JSON.parse(r.body) as { error?: { message: string }; message?: string }).error?.message ?? (JSON.parse(r.body) as { message: string }).message;
      assert.ok(
        payloadBytes(r) <= LAMBDA_RESPONSE_PAYLOAD_BYTES && message.length <= MAX_ERROR_FIELD_CHARS + 100,
        `status ${r.statusCode}, message ${message.length} characters, payload ${payloadBytes(r)} bytes (limit ${LAMBDA_RESPONSE_PAYLOAD_BYTES}): ${message.slice(0, 60)}…`,
      );
    });
  }
});
