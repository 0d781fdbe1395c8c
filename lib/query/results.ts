// What a statement's rows become, per framing: /v1 keeps postgres.js's typed
// rows as JSON objects; /sql passes PostgreSQL's text through as Neon's arrays.
// Each sink tells the response budget how large a row is as it arrives.
import type postgres from "postgres";
import { jsonLength } from "./limits.ts";
import { typeSize } from "./type-sizes.ts";

/** Rows as JSON objects with typed values (/v1), serialised once, with the whole response. */
export interface StatementResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: readonly { readonly name: string; readonly dataTypeID: number }[];
  readonly rows: readonly Record<string, unknown>[];
}

/** Rows as arrays of PostgreSQL's text output, with Neon's field metadata (/sql). */
export interface TextResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: readonly TextField[];
  /** Each row's JSON text: an array of strings and nulls. */
  readonly rowsJson: readonly string[];
}

export interface TextField {
  readonly name: string;
  readonly dataTypeID: number;
  readonly tableID: number;
  readonly columnID: number;
  readonly dataTypeSize: number;
  readonly dataTypeModifier: number;
  readonly format: "text";
}

export type ResultMode = "json" | "text";
export type ResultOf<M extends ResultMode> = M extends "json" ? StatementResult : TextResult;

const textFields = (columns: postgres.ColumnList<string> | undefined): TextField[] =>
  (columns ?? []).map((c) => ({
    name: c.name,
    dataTypeID: c.type,
    tableID: c.table,
    columnID: c.number,
    dataTypeSize: typeSize(c.type),
    // postgres.js does not keep the type modifier from RowDescription.
    dataTypeModifier: -1,
    format: "text" as const,
  }));

type RawValue = Uint8Array | null;
const utf8 = new TextDecoder();

/** A row as the response will hold it, and its size there. */
export interface SunkRow {
  readonly value: unknown;
  readonly size: number;
}

/** One framing's rows: each row as it arrives, then the statement's result around them. */
export interface RowSink<M extends ResultMode> {
  row(row: unknown): SunkRow;
  result(done: { command: string; count: number | null | undefined; columns: postgres.ColumnList<string> | undefined }, rows: unknown[]): ResultOf<M>;
}

const jsonSink: RowSink<"json"> = {
  row: (row) => ({ value: row, size: jsonLength(row as Record<string, unknown>) }),
  result: (done, rows) => ({
    command: done.command,
    rowCount: done.count ?? null,
    fields: (done.columns ?? []).map((c) => ({ name: c.name, dataTypeID: c.type })),
    rows: rows as Record<string, unknown>[],
  }),
};

const textSink: RowSink<"text"> = {
  row(row) {
    const text = JSON.stringify((row as RawValue[]).map((v) => (v === null ? null : utf8.decode(v))));
    return { value: text, size: text.length };
  },
  result: (done, rows) => ({ command: done.command, rowCount: done.count ?? null, fields: textFields(done.columns), rowsJson: rows as string[] }),
};

export const sinkFor = <M extends ResultMode>(mode: M): RowSink<M> => (mode === "json" ? jsonSink : textSink) as unknown as RowSink<M>;
