// A JSON request -> statement(s) on the caller's pooled connection -> results.
// One statement runs on its own; {"queries": [...]} runs them all in one
// transaction that rolls back on the first error.
import type postgres from "postgres";
import { z } from "zod";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { fromDriverError } from "../upstream/errors.ts";
import { parameterText } from "../upstream/json-types.ts";

/** PostgreSQL's limit on bind parameters in one statement. */
const MAX_PARAMS = 65535;

const Statement = z
  .object({
    query: z.string().min(1, "query must not be empty"),
    // Any JSON value; each is sent as text (objects and arrays as JSON text).
    params: z.array(z.unknown()).max(MAX_PARAMS).optional(),
  })
  .strict();
export type Statement = z.infer<typeof Statement>;

const Body = z.union([Statement, z.object({ queries: z.array(Statement).min(1).max(1000) }).strict()]);

export type QueryRequest = { readonly kind: "single"; readonly statement: Statement } | { readonly kind: "batch"; readonly statements: readonly Statement[] };

export interface TransactionOptions {
  readonly isolation?: "read uncommitted" | "read committed" | "repeatable read" | "serializable";
  readonly readOnly?: boolean;
  readonly deferrable?: boolean;
}

export interface StatementResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: readonly { readonly name: string; readonly dataTypeID: number }[];
  readonly rows: readonly Record<string, unknown>[];
}

export function parseQueryRequest(value: unknown): QueryRequest {
  const parsed = Body.safeParse(value);
  if (!parsed.success) {
    // A union reports every branch; the single-statement branch speaks to most callers.
    const issues = parsed.error.issues.flatMap((i) => (i.code === "invalid_union" ? (i.errors[0] ?? []) : [i]));
    const issue = issues[0];
    const where = issue && issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw gatewayError(SQLSTATE.invalidParameterValue, `invalid request body: ${where}${issue?.message ?? "invalid"}`, {
      hint: 'Send {"query": "...", "params": [...]} or {"queries": [{"query": ...}, ...]}.',
    });
  }
  const body = parsed.data;
  const statements = "queries" in body ? body.queries : [body];
  for (const s of statements) {
    if (s.query.includes("\0")) throw gatewayError(SQLSTATE.invalidParameterValue, "query contains a NUL byte");
  }
  return "queries" in body ? { kind: "batch", statements: body.queries } : { kind: "single", statement: body };
}

async function runOne(sql: postgres.Sql | postgres.TransactionSql, s: Statement): Promise<StatementResult> {
  const params = (s.params ?? []).map(parameterText);
  const result = await sql.unsafe(s.query, params as postgres.ParameterOrJSON<never>[]);
  return {
    command: result.command,
    rowCount: result.count ?? null,
    fields: (result.columns ?? []).map((c) => ({ name: c.name, dataTypeID: c.type })),
    rows: [...result] as Record<string, unknown>[],
  };
}

function beginMode(o: TransactionOptions): string {
  return [o.isolation ? `isolation level ${o.isolation}` : "", o.readOnly ? "read only" : "", o.deferrable ? "deferrable" : ""]
    .filter(Boolean)
    .join(" ");
}

export async function runSingle(sql: postgres.Sql, s: Statement): Promise<StatementResult> {
  try {
    return await runOne(sql, s);
  } catch (err) {
    throw fromDriverError(err);
  }
}

export async function runBatch(sql: postgres.Sql, statements: readonly Statement[], options: TransactionOptions): Promise<StatementResult[]> {
  try {
    return (await sql.begin(beginMode(options), async (tx) => {
      const out: StatementResult[] = [];
      for (const s of statements) out.push(await runOne(tx, s));
      return out;
    })) as StatementResult[];
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw fromDriverError(err);
  }
}
