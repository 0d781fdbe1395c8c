// Response bodies built as text around rows that are already JSON: each row
// was serialised once, to count it against the response limits, and is not
// parsed or serialised again.
import type { StatementResult } from "../query/run.ts";

/** A /v1 statement result: command, rowCount, fields, rows (objects). */
export function resultJson(r: StatementResult): string {
  return `{"command":${JSON.stringify(r.command)},"rowCount":${JSON.stringify(r.rowCount)},"fields":${JSON.stringify(r.fields)},"rows":[${r.rowsJson.join(",")}]}`;
}

/** A batch: each statement's result, already JSON text, in order. */
export function resultsJson(results: readonly string[]): string {
  return `{"results":[${results.join(",")}]}`;
}
