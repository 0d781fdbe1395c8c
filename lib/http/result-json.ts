// Response bodies as JSON text. /v1 results are serialised whole (one
// JSON.stringify over rows postgres.js built); Neon's /sql rows arrive as
// JSON text already and are joined, not parsed again.
import type { StatementResult } from "../query/results.ts";

/** A /v1 statement result: command, rowCount, fields, rows (objects). */
export function resultJson(r: StatementResult): string {
  return JSON.stringify(r);
}

/** A batch: each statement's result, already JSON text, in order. */
export function resultsJson(results: readonly string[]): string {
  return `{"results":[${results.join(",")}]}`;
}
