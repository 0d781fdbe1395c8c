// PostgreSQL's text output -> the typed JSON values /v1 answers with, the
// same values postgres.js with the gateway's types (upstream/json-types.ts)
// made of it: int2, int4, oid and finite floats as numbers; bool; json and
// jsonb parsed; timestamps as ISO-8601 with microseconds; everything else
// (int8, numeric, dates, bytea as \x…, intervals, user types) as PostgreSQL
// printed it. Arrays of any type as JSON arrays of their elements' values,
// given which types are arrays (the server's catalogue, asked once per pool:
// ARRAY_TYPES). Two differences: an array's NULL element is null here, where
// postgres.js handed on the text "NULL" (or NaN, for numbers: null in JSON);
// an array with bounds ("[0:1]={7,8}") is its elements, which postgres.js
// nested one level deeper.
import { isoTimestamp } from "../upstream/json-types.ts";
import type { Column, Values } from "../upstream/wire-connection.ts";

type Parse = (text: string) => unknown;

function float(text: string): number | string {
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

const number: Parse = (t) => +t;

/** Element types with a value of their own; every other type is its text. */
const SCALARS: ReadonlyMap<number, Parse> = new Map<number, Parse>([
  [21, number],
  [23, number],
  [26, number],
  [700, float],
  [701, float],
  [16, (t) => t === "t"],
  [114, (t) => JSON.parse(t) as unknown],
  [3802, (t) => JSON.parse(t) as unknown],
  [1114, isoTimestamp],
  [1184, isoTimestamp],
]);

/**
 * Each type's array type, from the server's catalogue (as postgres.js asks
 * at connect: every array type the database has, user types' too; not
 * int2vector and oidvector, whose text has no braces).
 */
export const ARRAY_TYPES = "SELECT typarray, oid FROM pg_catalog.pg_type WHERE typarray <> 0";

/** The array types a database has: array type -> element type. */
export type ArrayTypes = ReadonlyMap<number, number>;

/** How a column of `type` is made a JSON value; undefined: its text as it is. */
export function parserFor(type: number, arrays: ArrayTypes): Parse | undefined {
  const scalar = SCALARS.get(type);
  if (scalar) return scalar;
  const element = arrays.get(type);
  if (element === undefined) return undefined;
  const parse = SCALARS.get(element);
  // Only box's array separates its elements with ';' (box's own text has commas).
  const delimiter = type === 1020 ? ";" : ",";
  return (text) => parseArray(text, delimiter, parse);
}

/**
 * An array's text output -> nested JSON arrays. Elements are quoted when
 * they hold a delimiter, a brace, a quote, a backslash, white space or are
 * the word NULL; in quotes, `\` escapes the next character. An unquoted NULL
 * is SQL's NULL. A lower bound other than 1 ("[0:1]={…}") is dropped, as
 * JSON arrays start at 0.
 */
export function parseArray(text: string, delimiter: string, parse: Parse | undefined): unknown[] {
  let i = 0;
  if (text[0] === "[") i = text.indexOf("=") + 1;
  const value = (raw: string, quoted: boolean): unknown => (!quoted && raw === "NULL" ? null : parse ? parse(raw) : raw);
  const list = (): unknown[] => {
    const out: unknown[] = [];
    i++; // {
    if (text[i] === "}") {
      i++;
      return out;
    }
    for (;;) {
      if (text[i] === "{") out.push(list());
      else if (text[i] === '"') {
        let raw = "";
        for (i++; text[i] !== '"'; i++) {
          if (text[i] === "\\") i++;
          raw += text[i];
        }
        i++;
        out.push(value(raw, true));
      } else {
        const start = i;
        while (text[i] !== delimiter && text[i] !== "}") i++;
        out.push(value(text.slice(start, i), false));
      }
      if (text[i] === "}") {
        i++;
        return out;
      }
      i++; // the delimiter
    }
  };
  return list();
}

const utf8 = new TextDecoder();

/**
 * A statement's rows as /v1's JSON objects, keyed by column name (a later
 * column of the same name wins, as in postgres.js). A column named
 * __proto__ is a key like any other, never the object's prototype.
 */
export function rowBuilder(columns: readonly Column[], arrays: ArrayTypes): (values: Values) => Record<string, unknown> {
  const parsers = columns.map((c) => parserFor(c.type, arrays));
  const names = columns.map((c) => c.name);
  return (values) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) {
      const raw = values[i];
      const value = raw === null || raw === undefined ? null : parsers[i] ? parsers[i]!(utf8.decode(raw)) : utf8.decode(raw);
      if (names[i] === "__proto__") Object.defineProperty(row, "__proto__", { value, enumerable: true, writable: true, configurable: true });
      else row[names[i]!] = value;
    }
    return row;
  };
}
