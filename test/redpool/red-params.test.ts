// Red team (bind encoding): parameters must reach PostgreSQL byte-exact as UTF-8,
// or be refused with a clear 4xx, never corrupt a neighbour, the statement or
// the next request on the same pooled connection (HBAGATE_POOL_MAX=1 here).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { testApp } from "../harness/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "../http/deps.ts";
import type { Pools } from "../../lib/upstream/pools.ts";

const hex = (s: string) => Buffer.from(s, "utf8").toString("hex");

describe("red: parameters arrive exactly as sent", () => {
  let cluster: Cluster;
  let pools: Pools;
  let app: ReturnType<typeof testApp>;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login`);
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port, { max: 1 });
    app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "app" }, maxBodyBytes: 1024 * 1024 });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const post = (body: unknown) => postSql(app, body);

  /** Each param's hex as the server holds it, and the statement still the one sent. */
  async function roundTrip(params: (string | null)[]): Promise<void> {
    const cols = params.map((_, i) => `encode(convert_to($${i + 1}::text, 'UTF8'), 'hex') as h${i}`).join(", ");
    const r = await post({ query: `select 'marker' as m, ${cols}`, params });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
    const row = r.body.rows[0];
    assert.equal(row.m, "marker");
    params.forEach((p, i) => {
      const got = row[`h${i}`];
      const want = p === null ? null : hex(p);
      if (got !== want) assert.fail(`param $${i + 1} (${p === null ? "null" : p.length + " units"}) arrived as ${String(got).slice(0, 80)}… (${got === null ? 0 : got.length / 2} bytes), sent ${String(want).slice(0, 80)}… (${want === null ? 0 : want.length / 2} bytes)`);
    });
    // The next request on the same connection is unharmed.
    const next = await post({ query: "select $1::text as a, $2::int as b", params: ["next", 7] });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.deepEqual([next.body.rows[0].a, next.body.rows[0].b], ["next", 7]);
  }

  const cases: [string, (string | null)[]][] = [
    ["ascii, empty, null", ["a", "", null, "z"]],
    ["2-, 3-, 4-byte characters", ["é", "€", "😀", "a😀b€cé"]],
    ["exactly 4096 three-byte units", ["€".repeat(4096), "x"]],
    ["4097 three-byte units", ["€".repeat(4097), "y"]],
    ["a surrogate pair straddling 4096", ["a".repeat(4095) + "😀", "n"]],
    ["a surrogate pair straddling 4097", ["a".repeat(4096) + "😀", "n"]],
    ["4096 emoji (8192 units)", ["😀".repeat(4096), "q"]],
    ["2048 emoji (4096 units)", ["😀".repeat(2048), "q"]],
    ["short / long / short interleaved", ["€".repeat(4096), "😀".repeat(3000), "a", "€".repeat(4097), null, "é".repeat(4096)]],
    ["many parameters", Array.from({ length: 1000 }, (_, i) => (i % 7 === 0 ? null : i % 3 === 0 ? "€".repeat(i) : `p${i}😀`))],
  ];
  for (const [name, params] of cases) test(name, () => roundTrip(params));

  test("a parameter near the body limit (3-byte characters)", async () => {
    // ~1 MiB of JSON: 340k units of '€' is 1.02 MB encoded.
    await roundTrip(["€".repeat(340_000), "tail"]);
  });

  test("a parameter near the body limit (emoji)", async () => {
    await roundTrip(["x", "😀".repeat(250_000), "tail"]);
  });

  test("many short parameters that together are large", async () => {
    await roundTrip(Array.from({ length: 250 }, (_, i) => "€".repeat(1000 + i * 3)));
  });

  test("a lone surrogate is byte-exact or refused with a 4xx", async () => {
    for (const p of ["\ud800", "a\udc00b", "😀".slice(0, 1) + "x", "x".repeat(4096) + "\ud83d"]) {
      const r = await post({ query: "select encode(convert_to($1::text, 'UTF8'), 'hex') as h, $2::text as n", params: [p, "neighbour"] });
      if (r.status === 200) {
        assert.equal(r.body.rows[0].n, "neighbour");
        // A lone surrogate has no UTF-8 form: replacing it silently is not "exactly as sent".
        assert.fail(`a lone surrogate was accepted and arrived as ${r.body.rows[0].h.slice(-12)} (U+FFFD is efbfbd), not refused`);
      }
      assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, "22021", JSON.stringify(r.body));
      assert.match(r.body.error?.message, /^parameter \$1 is not valid Unicode/);
    }
    // In the query's own text too, where it would change a literal or a name.
    const q = await post({ query: "select 'a\ud800' as v" });
    assert.equal(q.status, 400, JSON.stringify(q.body));
    assert.equal(q.body.error?.code, "22021");
    // A well-formed pair is a character like any other.
    const pair = await post({ query: "select $1::text as v", params: ["\ud83d\ude00"] });
    assert.equal(pair.body.rows?.[0]?.v, "😀", JSON.stringify(pair.body));
  });

  test("a NUL in a parameter is refused with a 4xx and a SQLSTATE, and the connection lives on", async () => {
    for (const p of ["\0", "a\0b", "€".repeat(4095) + "\0", "x".repeat(5000) + "\0"]) {
      const r = await post({ query: "select $1::text as v, $2::text as n", params: [p, "neighbour"] });
      assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, "22021", JSON.stringify(r.body));
      const next = await post({ query: "select $1::text as a", params: ["after"] });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      assert.equal(next.body.rows[0].a, "after");
    }
  });

  test("the maximum parameter count", async () => {
    const n = 65533;
    const list = Array.from({ length: n }, (_, i) => `$${i + 1}`).join(",");
    const params = Array.from({ length: n }, (_, i) => (i === 0 ? "first" : i === n - 1 ? "last😀" : i % 1000 === 0 ? `v${i}€` : null));
    const r = await post({ query: `select (array[${list}]::text[]) as a`, params });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    const a = r.body.rows[0].a as (string | null)[];
    assert.equal(a.length, n);
    assert.deepEqual(a, params);
  });

  test("non-string params (numbers, booleans, objects) keep their text", async () => {
    const obj = { k: "€😀", n: [1, 2.5, null], s: "\u2028" };
    const r = await post({ query: "select $1::text as a, $2::text as b, $3::text as c, $4::text as d", params: [1e21, true, obj, -0] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows[0].c && JSON.parse(r.body.rows[0].c), obj);
  });
});
