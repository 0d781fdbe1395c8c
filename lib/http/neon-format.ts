// Neon's response shapes for /sql: rows as arrays of text with
// rowAsArray: true, and errors as a flat object with every field present.
import type { GatewayError, PgErrorFields } from "../errors.ts";
import type { TextResult } from "../query/results.ts";
import { httpStatus } from "./status.ts";

/** One statement's result as Neon shapes it, as JSON text (the rows are already serialised). */
export function neonResultJson(r: TextResult): string {
  return `{"fields":${JSON.stringify(r.fields)},"rows":[${r.rowsJson.join(",")}],"command":${JSON.stringify(r.command)},"rowCount":${JSON.stringify(r.rowCount)},"rowAsArray":true}`;
}

const FIELDS: readonly (keyof PgErrorFields)[] = [
  "severity", "code", "detail", "hint", "position", "internalPosition", "internalQuery", "where",
  "schema", "table", "column", "dataType", "constraint", "file", "line", "routine",
];

export function neonError(e: GatewayError): Record<string, string | null> {
  const out: Record<string, string | null> = { message: e.fields.message };
  for (const k of FIELDS) out[k] = e.fields[k] ?? null;
  return out;
}

/**
 * Neon's clients read the SQLSTATE only from a 400, so every error a caller
 * can act on is a 400 here; an unavailable upstream or an internal fault keeps
 * its 5xx so clients and load balancers retry.
 */
export function neonStatus(sqlstate: string): number {
  const status = httpStatus(sqlstate);
  return status >= 500 ? status : 400;
}
