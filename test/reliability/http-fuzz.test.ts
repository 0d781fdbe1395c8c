// Hostile and broken input to both endpoints: whatever arrives, the answer is
// a structured JSON error (or rows), never a 500 with a stack trace, never a
// crash. Property-based (fast-check), bounded in count, against a real
// PostgreSQL with an unprivileged role.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

describe("hostile and broken HTTP input", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;
  const logs: unknown[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role fuzz login nosuperuser nocreatedb nocreaterole");
    await cluster.writeHba("host all fuzz 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port, { max: 2, statementTimeout: 1000 });
    app = testApp(pools, "host all fuzz all trust\n", { maxBodyBytes: 256 * 1024, caller: { anonymousUser: "fuzz" }, log: (e) => logs.push(e) });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  async function send(path: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
    const res = await app.request(path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const text = await res.text();
    return { status: res.status, text };
  }

  function assertStructured(r: { status: number; text: string }, what: string) {
    assert.notEqual(r.status, 500, `${what}: 500 ${r.text}`);
    assert.ok(r.status === 200 || (r.status >= 400 && r.status < 600), `${what}: status ${r.status}`);
    const json = JSON.parse(r.text) as Record<string, any>;
    if (r.status !== 200) {
      const err = json.error ?? json; // /v1 nests, /sql is flat (Neon's shape)
      assert.match(String(err.code), /^[0-9A-Z]{5}$/, `${what}: ${r.text}`);
      assert.ok(!/\n\s+at /.test(r.text), `${what}: a stack trace leaked`);
    }
  }

  test("random JSON bodies and wrong types for query/params", async () => {
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ query: fc.jsonValue(), params: fc.jsonValue() }, { requiredKeys: [] }),
      fc.record({ query: fc.string(), params: fc.array(fc.jsonValue(), { maxLength: 20 }) }),
      fc.record({ queries: fc.array(fc.record({ query: fc.string(), params: fc.array(fc.jsonValue(), { maxLength: 5 }) }), { maxLength: 5 }) }),
    );
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom("/v1/postgres/sql", "/sql"), async (b, path) => {
        const headers = path === "/sql" ? { "neon-connection-string": "postgresql://fuzz@h/postgres" } : {};
        assertStructured(await send(path, JSON.stringify(b), headers), JSON.stringify(b).slice(0, 200));
      }),
      { numRuns: 150, seed: 42 },
    );
  });

  test("bytes that are not JSON or not UTF-8, NUL bytes, and garbage headers", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 300 }),
        fc.string({ maxLength: 80 }),
        fc.string({ maxLength: 120 }),
        async (bytes, auth, conn) => {
          const headers: Record<string, string> = {};
          // Headers cannot carry every string; what the platform refuses never reaches us.
          if (/^[\t\x20-\x7e]*$/.test(auth)) headers.authorization = auth;
          if (/^[\t\x20-\x7e]*$/.test(conn)) headers["neon-connection-string"] = conn;
          assertStructured(await send("/v1/postgres/sql", bytes, headers), `bytes ${bytes.length}`);
          assertStructured(await send("/sql", bytes, headers), `bytes ${bytes.length} /sql`);
        },
      ),
      { numRuns: 100, seed: 7 },
    );
    assertStructured(await send("/v1/postgres/sql", '{"query":"select 1\u0000"}'), "NUL in query");
    assertStructured(await send("/v1/postgres/sql", '{"query":"select $1::text","params":["a\\u0000b"]}'), "NUL in a parameter");
    assertStructured(await send("/v1/postgres/sql", Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), "invalid UTF-8");
  });

  test("deeply nested JSON, huge strings, thousands of parameters", async () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    assertStructured(await send("/v1/postgres/sql", `{"query":"select 1","params":[${deep}]}`), "deep params");
    assertStructured(await send("/v1/postgres/sql", deep), "deep body");
    const nestedObject = '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000);
    assertStructured(await send("/v1/postgres/sql", `{"query":"select $1::jsonb","params":[${nestedObject}]}`), "deep object param");
    const huge = await send("/v1/postgres/sql", JSON.stringify({ query: "select '" + "x".repeat(300_000) + "'" }));
    assert.equal(huge.status, 413);
    assertStructured(huge, "huge");
    const many = Array.from({ length: 5000 }, (_, i) => i);
    const manyParams = await send("/v1/postgres/sql", JSON.stringify({ query: "select $1::int", params: many }));
    assertStructured(manyParams, "5000 params");
    const tooMany = await send("/v1/postgres/sql", JSON.stringify({ query: "select 1", params: Array(70_000).fill(0) }));
    assert.equal(tooMany.status, 400);
  });

  test("hostile user and database names", async () => {
    for (const name of ["", "\u0000", "x".repeat(64), "a\u0000b", "' or 1=1 --", "../../etc/passwd", "ユーザー", "\uD800"]) {
      assertStructured(await send("/v1/postgres/sql", '{"query":"select 1"}', { authorization: basic(name, "pw") }), `user ${JSON.stringify(name)}`);
      const segment = !/[\uD800-\uDFFF]/.test(name) ? encodeURIComponent(name) || "%00" : "%ED%A0%80"; // a lone surrogate as raw UTF-8 bytes
      assertStructured(await send(`/v1/${segment}/sql`, '{"query":"select 1"}'), `database ${JSON.stringify(name)}`);
    }
  });

  test("nothing unexpected was logged as an unhandled error", () => {
    assert.ok(!logs.some((l) => (l as { msg?: string }).msg === "unhandled error"), JSON.stringify(logs.find((l) => (l as { msg?: string }).msg === "unhandled error")));
  });
});
