// A row's JSON text straight from the wire. The statement runs in postgres.js's
// raw mode (each value the bytes of PostgreSQL's text output), and the row is
// written as the object postgres.js would have built and JSON.stringify would
// have printed: no object per row, no property per value. Types whose text is
// already JSON (integers) or a JSON string (text, numeric, int8, uuid…) are
// copied or quoted; everything else goes through postgres.js's own parser for
// the column (the gateway's json-types, arrays) and JSON.stringify, exactly as
// before.
import type postgres from "postgres";

/** What postgres.js records per result column (its `parser` is not in the public types). */
interface Column {
  readonly name: string;
  readonly type: number;
  readonly parser?: ((text: string) => unknown) & { array?: boolean };
}

type RawValue = Uint8Array | null;
type Write = (value: Uint8Array) => string;

/** Node's Buffer.toString where postgres.js hands us Buffers (it always does); a decoder otherwise. */
const decoder = new TextDecoder();
const text = (v: Uint8Array): string => (typeof (v as { utf8Slice?: unknown }).utf8Slice === "function" ? v.toString() : decoder.decode(v));

// int2, int4, oid: PostgreSQL prints them as JSON prints the same number.
const VERBATIM = new Set([21, 23, 26]);

function writerFor(c: Column): Write {
  if (VERBATIM.has(c.type) && !c.parser?.array) {
    // postgres.js parses these with Number(); canonical integer text is the same JSON.
    return (v) => text(v);
  }
  const parse = c.parser;
  if (parse === undefined) return (v) => JSON.stringify(text(v));
  // postgres.js drops the leading "{" before calling an array parser.
  if (parse.array === true) return (v) => JSON.stringify(parse(text(v).slice(1))) ?? "null";
  return (v) => JSON.stringify(parse(text(v))) ?? "null";
}

/**
 * The row writer for a result's columns, or undefined when rows must be built
 * as objects first: duplicate column names (the object keeps the last value
 * under the first position) and names an object treats specially.
 */
export function rowWriter(columns: postgres.ColumnList<string>): ((row: readonly RawValue[]) => string) | undefined {
  const cols = columns as unknown as readonly Column[];
  const names = new Set<string>();
  for (const c of cols) {
    if (names.has(c.name) || c.name === "__proto__" || /^\d+$/.test(c.name)) return undefined;
    names.add(c.name);
  }
  const keys = cols.map((c, i) => `${i === 0 ? "{" : ","}${JSON.stringify(c.name)}:`);
  const writers = cols.map(writerFor);
  return (row) => {
    let out = cols.length === 0 ? "{" : "";
    for (let i = 0; i < writers.length; i++) {
      const v = row[i];
      out += keys[i]! + (v === null || v === undefined ? "null" : writers[i]!(v));
    }
    return out + "}";
  };
}

/** The same row as the object postgres.js would have built, for the cases rowWriter declines. */
export function rowObject(columns: postgres.ColumnList<string>, row: readonly RawValue[]): Record<string, unknown> {
  const cols = columns as unknown as readonly Column[];
  const out: Record<string, unknown> = {};
  cols.forEach((c, i) => {
    const v = row[i];
    if (v === null || v === undefined) {
      out[c.name] = null;
      return;
    }
    const t = text(v);
    out[c.name] = c.parser === undefined ? t : c.parser.array === true ? c.parser(t.slice(1)) : c.parser(t);
  });
  return out;
}
