// Lambda's response payload limit (6 MB, the whole JSON the handler returns):
// results past it are the gateway's own 507 (53400), as on the Node server,
// never a payload AWS refuses with a bare 502; and a 256 MB function never
// builds more of a result than it may send. Events as a function URL sends
// them, to the bundled handler, against the harness's real PostgreSQL.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { LAMBDA_MAX_RESPONSE_BYTES, LAMBDA_RESPONSE_PAYLOAD_BYTES, loadLambdaSettings } from "../../lib/config/settings.ts";
import { jsonStringLength } from "../../lib/query/limits.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { buildHandler, codeAndMemory, errorOf, functionUrlEvent, importHandler, invokeInOwnProcess, payloadBytes, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

const MiB = 1024 * 1024;

test("jsonStringLength is the UTF-8 length of JSON.stringify's string, quotes aside", () => {
  const samples = ['plain', '"q"\\', "\n\t\b\f\r\u0000\u001f", "é€😀", "\ud800 lone \udc00", "\u2028\u2029", ""];
  const alphabet = ['"', "\\", "a", "\u0001", "\n", "é", "€", "\ud83d", "\ude00", "\u007f"];
  for (let i = 0; i < 200; i++) samples.push(Array.from({ length: 20 }, (_, j) => alphabet[(i * 7 + j * 13 + i * j) % alphabet.length]).join(""));
  for (const s of samples) assert.equal(jsonStringLength(s), Buffer.byteLength(JSON.stringify(s)) - 2, JSON.stringify(s));
});

describe("responses on Lambda", () => {
  let cluster: Cluster;
  let handler: Handler;
  let bundle: string;
  let env: Record<string, string>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    bundle = await buildHandler();
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, "hostssl all app 0.0.0.0/0 trust\n");
    env = {
      HBAGATE_HBA_FILE: hba,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      HBAGATE_UPSTREAM_SSL: "disable",
    };
    Object.assign(process.env, env);
    handler = await importHandler(bundle);
  });
  after(async () => {
    await cluster?.stop();
  });

  const sql = (query: string, path = "/v1/postgres/sql") =>
    handler(
      functionUrlEvent(
        { query },
        path === "/sql"
          ? { path, headers: { "neon-connection-string": `postgresql://app@abc123.lambda-url.eu-west-1.on.aws/postgres` } }
          : { headers: { authorization: basic("app") } },
      ),
    );

  test("the Lambda default fits the payload limit, and a larger setting is refused", () => {
    assert.equal(loadLambdaSettings({}).HBAGATE_MAX_RESPONSE_BYTES, LAMBDA_MAX_RESPONSE_BYTES);
    assert.ok(LAMBDA_MAX_RESPONSE_BYTES < LAMBDA_RESPONSE_PAYLOAD_BYTES);
    assert.equal(loadLambdaSettings({ HBAGATE_MAX_RESPONSE_BYTES: "1000" }).HBAGATE_MAX_RESPONSE_BYTES, 1000);
    assert.throws(() => loadLambdaSettings({ HBAGATE_MAX_RESPONSE_BYTES: String(64 * MiB) }), /HBAGATE_MAX_RESPONSE_BYTES="67108864": at most/);
  });

  test("a 7 MB result is the gateway's 507 (53400), on /v1 and on Neon's /sql", async () => {
    const r = await sql("select repeat('x', 7000000) as big");
    assert.equal(r.statusCode, 507, `status ${r.statusCode}, ${r.body.length} characters`);
    assert.equal(errorOf(r)?.code, "53400");
    assert.ok(payloadBytes(r) < 10_000);
    const neon = await sql("select repeat('x', 7000000) as big", "/sql");
    assert.equal(neon.statusCode, 507, `status ${neon.statusCode}, ${neon.body.length} characters`);
    assert.equal((JSON.parse(neon.body) as { code: string }).code, "53400");
  });

  test("escapes count as the payload carries them: 2 M backslashes (4 MB of JSON, 8 MB in the payload) are a 507", async () => {
    const r = await sql("select repeat(E'\\\\', 2000000) as slashes");
    assert.equal(r.statusCode, 507, `status ${r.statusCode}, payload ${payloadBytes(r)} bytes`);
    assert.equal(errorOf(r)?.code, "53400");
  });

  test("a result just inside the limit is delivered, and its payload fits Lambda's", async () => {
    // Quotes: each takes two bytes in the body and four in the payload.
    const quotes = Math.floor(LAMBDA_MAX_RESPONSE_BYTES / 4) - 1000;
    const r = await sql(`select repeat('"', ${quotes}) as q`);
    assert.equal(r.statusCode, 200, r.body.slice(0, 300));
    assert.equal((JSON.parse(r.body) as { rows: { q: string }[] }).rows[0]?.q.length, quotes);
    assert.ok(payloadBytes(r) <= LAMBDA_RESPONSE_PAYLOAD_BYTES, `${payloadBytes(r)} bytes`);
    const plain = await sql(`select repeat('x', ${LAMBDA_MAX_RESPONSE_BYTES - 100_000}) as x`);
    assert.equal(plain.statusCode, 200);
    assert.ok(payloadBytes(plain) <= LAMBDA_RESPONSE_PAYLOAD_BYTES, `${payloadBytes(plain)} bytes`);
  });

  test("60,000 wide rows (52 MB of JSON) in a fresh instance: a 507, and the process stays well inside a 256 MB function", async () => {
    // A process of its own, so its peak memory is this request's alone.
    const columns = Array.from({ length: 4 }, (_, i) => `repeat(chr(97 + ${i}), 200) as c${i}`).join(", ");
    const event = functionUrlEvent({ query: `select g, ${columns} from generate_series(1, 60000) g` }, { headers: { authorization: basic("app") } });
    const out = codeAndMemory(await invokeInOwnProcess(bundle, event, { ...process.env, ...env }, 120_000));
    assert.ok(out.maxRss < 160 * MiB, `peak RSS ${(out.maxRss / MiB).toFixed(0)} MiB (status ${out.status})`);
    assert.equal(out.status, 507);
    assert.equal(out.code, "53400");
  });
});
