// A JSON request -> one statement on the caller's pooled connection -> JSON rows.
import type postgres from "postgres";
import { z } from "zod";
import { gatewayError, SQLSTATE } from "../errors.ts";
import { fromDriverError } from "../upstream/errors.ts";

/** PostgreSQL's limit on bind parameters in one statement. */
const MAX_PARAMS = 65535;

export const QueryBody = z
  .object({
    query: z.string().min(1, "query must not be empty"),
    params: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).max(MAX_PARAMS).optional(),
  })
  .strict();
export type QueryBody = z.infer<typeof QueryBody>;

export interface QueryResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: readonly { readonly name: string; readonly dataTypeID: number }[];
  readonly rows: readonly Record<string, unknown>[];
}

export function parseQueryBody(value: unknown): QueryBody {
  const parsed = QueryBody.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw gatewayError(SQLSTATE.invalidParameterValue, `invalid request body: ${where}${issue?.message ?? "invalid"}`, {
      hint: 'Send {"query": "...", "params": [...]}.',
    });
  }
  if (parsed.data.query.includes("\0")) throw gatewayError(SQLSTATE.invalidParameterValue, "query contains a NUL byte");
  return parsed.data;
}

export async function runQuery(sql: postgres.Sql, body: QueryBody): Promise<QueryResult> {
  try {
    const result = await sql.unsafe(body.query, (body.params ?? []) as postgres.ParameterOrJSON<never>[]);
    return {
      command: result.command,
      rowCount: result.count ?? null,
      fields: (result.columns ?? []).map((c) => ({ name: c.name, dataTypeID: c.type })),
      rows: [...result] as Record<string, unknown>[],
    };
  } catch (err) {
    throw fromDriverError(err);
  }
}
