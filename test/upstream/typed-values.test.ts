// /v1's typed values made from PostgreSQL's text output (lib/query/typed-values.ts)
// against what postgres.js, configured as the gateway configures it, makes of
// the same statements on the same server: the values the gateway answered
// with before its own protocol client, kept. Where they differ on purpose
// (an array's NULL element, an array's bounds) the test says so.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import postgres from "postgres";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { openServerStream } from "../../lib/upstream/session-connection.ts";
import { WireConnection, type Column, type Values } from "../../lib/upstream/wire-connection.ts";
import { driverOptions, type UpstreamSettings } from "../../lib/upstream/upstream-settings.ts";
import { ARRAY_TYPES, parseArray, rowBuilder, type ArrayTypes } from "../../lib/query/typed-values.ts";

/** Expressions of every kind of value, each once as a column and once inside an array where it can be. */
const EXPRESSIONS = [
  "1::int2", "(-2147483648)::int4", "4294967295::oid", "9223372036854775807::int8", "123.4500::numeric", "'NaN'::numeric",
  "1.5::float4", "0.1::float8", "'NaN'::float8", "'Infinity'::float8", "'-Infinity'::float4",
  "true", "false", "'{\"a\":[1,{\"b\":null}]}'::json", "'{\"a\": 1}'::jsonb", "'\"s\"'::jsonb", "'null'::jsonb",
  "'2024-01-02 03:04:05.123456+05:30'::timestamptz", "'2024-01-02 03:04:05'::timestamp", "'infinity'::timestamptz", "'0044-03-15 12:00:00 BC'::timestamp",
  "'2024-02-29'::date", "'\\x00ff10'::bytea", "'1 day 02:03:04'::interval", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "12.5::money",
  "'(1,2)'::point", "'((0,0),(1,1))'::box", "'sad'::mood", "row(1, 'x y')::pair", "row(null, '')::pair", "'hello, \"world\" {x}'::text", "''::text", "'NULL'::text",
  "E'back\\\\slash'::text", "'07:08:09'::time", "'10.0.0.1/8'::inet",
];

const ARRAYS = [
  "array[1, 2, 3]::int4[]", "array[[1, 2], [3, 4]]::int2[]", "'{}'::int4[]", "array[1.5, 'NaN']::float8[]", "array[true, false]",
  "array['a', 'b c', 'd\"e', 'f\\g', '', 'NULL', '{x}', 'a,b']::text[]", "array['{\"k\": [1, 2]}', '2']::jsonb[]",
  "array['2024-01-02 03:04:05.5+00'::timestamptz]", "array['2024-02-29'::date]", "array['\\x01'::bytea]", "array[9223372036854775807]::int8[]",
  "array['(0,0),(1,1)'::box, '(2,2),(3,3)'::box]", "array['happy', 'sad']::mood[]", "array[row(1, 'x')::pair]",
  "array['1 day'::interval]", "array[1.0]::numeric[]", "'1 2'::int2vector",
];

/**
 * Where the values differ on purpose: an array's NULL element is null (postgres.js gave the text
 * "NULL", or NaN for numbers, null in JSON); an array with bounds other than 1 is its elements
 * (postgres.js nested them one level deeper: [[7,8]]).
 */
const DIFFERENT: [string, unknown[]][] = [
  ["array['a', null]::text[]", ["a", null]],
  ["array[1, null]::int4[]", [1, null]],
  ["array[null::jsonb]", [null]],
  ["'[0:1]={7,8}'::int4[]", [7, 8]],
];

describe("/v1's typed values from PostgreSQL's text", () => {
  let cluster: Cluster;
  let driver: postgres.Sql;
  let wire: WireConnection;
  let arrays: ArrayTypes;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create type mood as enum ('sad', 'happy'); create type pair as (a int, b text); create role typed login");
    await cluster.writeHba("host all typed 127.0.0.1/32 trust\n", { reload: true });
    const settings = { host: "127.0.0.1", port: cluster.port, idleTimeout: 0, connectTimeout: 5, maxLifetime: 60, statementTimeout: 0 } as UpstreamSettings;
    const options = driverOptions(settings, "postgres", "typed");
    driver = postgres({ ...options, max: 1 });
    // The same startup parameters as postgres.js sends (the text formats the values rely on).
    const parameters = Object.entries(options.connection).map(([k, v]) => [k, String(v)] as const);
    wire = new WireConnection(await openServerStream(settings, { database: "postgres", user: "typed", password: undefined, parameters }));
    arrays = new Map(await rowsOf(ARRAY_TYPES).then((rows) => rows.map((r) => [Number(r.typarray), Number(r.oid)] as [number, number])));
  });
  after(async () => {
    wire?.end();
    await driver?.end();
    await cluster?.stop();
  });

  async function rowsOf(query: string): Promise<Record<string, unknown>[]> {
    let columns: readonly Column[] = [];
    const raw: Values[] = [];
    const done = await wire.run({ text: query, params: [], prepare: false, row: (v) => raw.push(v) });
    columns = done.columns;
    const build = rowBuilder(columns, arrays ?? new Map());
    return raw.map(build);
  }

  test("every kind of value, and every array of one, as postgres.js made it", async () => {
    const all = [...EXPRESSIONS, ...ARRAYS];
    const query = `select ${all.map((e, i) => `${e} as c${i}`).join(", ")}`;
    const [fromDriver] = await driver.unsafe(query);
    const [ours] = await rowsOf(query);
    for (let i = 0; i < all.length; i++) {
      assert.deepEqual(JSON.stringify(ours![`c${i}`]), JSON.stringify(fromDriver![`c${i}`]), all[i]);
    }
    // Checked, not assumed alike: the arrays came back as arrays.
    assert.deepEqual(ours![`c${EXPRESSIONS.length}`], [1, 2, 3]);
    assert.deepEqual(ours![`c${EXPRESSIONS.length + 1}`], [[1, 2], [3, 4]]);
  });

  test("an array's NULL element is null; an array with other bounds is its elements", async () => {
    for (const [expression, expected] of DIFFERENT) {
      const [row] = await rowsOf(`select ${expression} as a`);
      assert.deepEqual(row!.a, expected, expression);
    }
  });

  test("a column named __proto__ is a key of the row, never its prototype; a later column of the same name wins", async () => {
    const [row] = await rowsOf(`select '{"polluted": true}'::jsonb as "__proto__", 1 as x, 2 as x`);
    assert.equal(JSON.stringify(row), '{"__proto__":{"polluted":true},"x":2}');
    assert.equal((row as { polluted?: unknown }).polluted, undefined);
  });
});

describe("parseArray", () => {
  test("quoting, nesting, bounds, the box delimiter", () => {
    assert.deepEqual(parseArray('{a,"b,c","d\\"e",NULL,"NULL"}', ",", undefined), ["a", "b,c", 'd"e', null, "NULL"]);
    assert.deepEqual(parseArray("{{1,2},{3,4}}", ",", Number), [[1, 2], [3, 4]]);
    assert.deepEqual(parseArray("[2:3]={5,6}", ",", Number), [5, 6]);
    assert.deepEqual(parseArray("{(1,1),(0,0);(3,3),(2,2)}", ";", undefined), ["(1,1),(0,0)", "(3,3),(2,2)"]);
    assert.deepEqual(parseArray("{}", ",", undefined), []);
    assert.deepEqual(parseArray('{""}', ",", undefined), [""]);
  });
});
