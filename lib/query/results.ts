// What a statement's rows become, per framing: /v1 makes typed JSON objects of
// them (typed-values.ts); /sql passes PostgreSQL's text through as Neon's
// arrays. Each sink tells the response budget how large a row is as it arrives.
import { GatewayError, SQLSTATE } from "../errors.ts";
import type { Column, Completion, Values } from "../upstream/wire-connection.ts";
import { jsonLength } from "./limits.ts";
import { rowBuilder, type ArrayTypes } from "./typed-values.ts";
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

const textFields = (columns: readonly Column[]): TextField[] =>
  columns.map((c) => ({
    name: c.name,
    dataTypeID: c.type,
    tableID: c.table,
    columnID: c.number,
    dataTypeSize: typeSize(c.type),
    dataTypeModifier: c.modifier,
    format: "text" as const,
  }));

const utf8 = new TextDecoder();

/** A row as the response will hold it, and its size there. */
export interface SunkRow {
  readonly value: unknown;
  readonly size: number;
}

/** One statement's rows in one framing: its columns, each row as it arrives, then the result around them. */
export interface RowSink<M extends ResultMode> {
  columns(columns: readonly Column[]): void;
  row(values: Values): SunkRow;
  result(done: Completion, rows: unknown[]): ResultOf<M>;
}

function jsonSink(arrays: ArrayTypes): RowSink<"json"> {
  let build: ((values: Values) => Record<string, unknown>) | undefined;
  return {
    columns: (columns) => void (build = rowBuilder(columns, arrays)),
    row(values) {
      const row = build!(values);
      try {
        return { value: row, size: jsonLength(row) };
      } catch (err) {
        // JSON.stringify's recursion: a json value nested thousands deep, which PostgreSQL allows.
        if (!(err instanceof RangeError)) throw err;
        throw new GatewayError(
          { code: SQLSTATE.programLimitExceeded, message: "a value of the answer is nested too deeply to be sent as JSON", hint: "Select it as text (::text)." },
          { cause: err },
        );
      }
    },
    result: (done, rows) => ({
      command: done.command,
      rowCount: done.count,
      fields: done.columns.map((c) => ({ name: c.name, dataTypeID: c.type })),
      rows: rows as Record<string, unknown>[],
    }),
  };
}

const textSink: RowSink<"text"> = {
  columns: () => {},
  row(values) {
    const text = JSON.stringify(values.map((v) => (v === null ? null : utf8.decode(v))));
    return { value: text, size: text.length };
  },
  result: (done, rows) => ({ command: done.command, rowCount: done.count, fields: textFields(done.columns), rowsJson: rows as string[] }),
};

/** A sink for one statement (/v1's keeps the statement's columns). */
export const sinkFor = <M extends ResultMode>(mode: M, arrays: ArrayTypes): RowSink<M> => (mode === "json" ? jsonSink(arrays) : textSink) as unknown as RowSink<M>;
