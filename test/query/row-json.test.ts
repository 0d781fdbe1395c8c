// Rows written as JSON straight from the wire must read exactly as the
// objects postgres.js builds (with the gateway's json-types) would print:
// the same statements run both ways against a real PostgreSQL, the texts
// compared.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type postgres from "postgres";
import { rowObject, rowWriter } from "../../lib/query/row-json.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";

const STATEMENTS = [
  "select 1::int2 as a, '-2147483648'::int4 as b, 9223372036854775807::int8 as c, 4294967295::oid as d",
  "select 1.50::numeric as n, 'NaN'::numeric as nn, 1.5::float4 as f4, 'NaN'::float8 as f8, '-Infinity'::float8 as ni, 1e300::float8 as big",
  "select true as t, false as f, null::bool as n",
  `select 'plain' as a, E'quote " backslash \\\\ tab \\t newline \\n bell \\007' as b, 'Καλημέρα 🎉' as c, '' as d, 'x'::char(3) as e, 'nm'::name as f, 'v'::varchar as g`,
  "select '5f0c1a84-43c4-4a3b-8a8e-5d2b9a1f0c11'::uuid as u",
  `select '{"a": [1, 2.50, null], "b": {"c": "d"}}'::json as j, '{"b": 1, "a": [true]}'::jsonb as jb, 'null'::jsonb as jn, '"s"'::json as js`,
  "select '2024-02-29 12:34:56.123456'::timestamp as ts, '2024-02-29 12:34:56.5+05:30'::timestamptz as tz, 'infinity'::timestamptz as inf, '2024-02-29'::date as d, '12:00'::time as t, '1 day 02:03:04'::interval as i",
  "select '\\x00ff10'::bytea as b",
  `select array[1, 2, null]::int4[] as ia, array['a', 'b"c', null, 'd,e', '{x}']::text[] as ta, array[[1,2],[3,4]]::int8[] as nested, '{}'::int4[] as empty, array['{"k":1}'::jsonb] as ja, array[true,false] as ba`,
  "select point(1, 2) as p, '10.0.0.0/8'::cidr as c, 'a fat cat'::tsvector as v, int4range(1, 5) as r",
  "select null::text as a, null::int4 as b, null::int4[] as c, null::jsonb as d",
  // Names an object treats specially: duplicates, integer-like keys, __proto__.
  "select 1 as a, 2 as a",
  `select 'x' as b, 'y' as "1", 'z' as "0"`,
  `select '{"evil": true}'::jsonb as "__proto__", 1 as ok`,
  `select 1 as "quote""d", 2 as "new\nline", 3 as "ünï"`,
  "select from generate_series(1, 2)",
  "select g as id, md5(g::text) as v from generate_series(1, 50) g",
];

describe("rows written as JSON from the wire", () => {
  let cluster: Cluster;
  let pools: Pools;

  before(async () => {
    cluster = await startCluster();
    await cluster.writeHba("host all postgres 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  for (const statement of STATEMENTS) {
    test(statement.slice(0, 90), async () => {
      await pools.use("postgres", "postgres", undefined, {}, async ({ sql }) => {
        const opts = { simple: false } as postgres.UnsafeQueryOptions;
        const objects = await sql.unsafe(statement, [], opts);
        const expected = objects.map((row) => JSON.stringify(row));
        const actual: string[] = [];
        await (sql.unsafe(statement, [], opts).raw() as unknown as postgres.PendingQuery<postgres.Row[]>).forEach((row, result) => {
          const raw = row as unknown as (Uint8Array | null)[];
          const write = rowWriter(result.columns);
          actual.push(write ? write(raw) : JSON.stringify(rowObject(result.columns, raw)));
        });
        assert.deepEqual(actual, expected);
        for (const text of actual) JSON.parse(text);
      });
    });
  }

  test("the fast writer is used unless the names need an object", async () => {
    await pools.use("postgres", "postgres", undefined, {}, async ({ sql }) => {
      const columnsOf = async (q: string) => (await sql.unsafe(q, [], { simple: false } as postgres.UnsafeQueryOptions)).columns;
      assert.ok(rowWriter(await columnsOf("select 1 as a, 'b' as b")));
      assert.equal(rowWriter(await columnsOf("select 1 as a, 2 as a")), undefined);
      assert.equal(rowWriter(await columnsOf(`select 1 as "7"`)), undefined);
    });
  });
});
