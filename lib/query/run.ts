// A JSON request -> statement(s) on the caller's pooled connection -> results.
// One statement runs on its own; {"queries": [...]} runs them all in one
// transaction that rolls back on the first error.
import type postgres from "postgres";
import { z } from "zod";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { fromDriverError } from "../upstream/errors.ts";
import { parameterText } from "../upstream/json-types.ts";
import { typeSize } from "./type-sizes.ts";

/** PostgreSQL's limit on bind parameters in one statement. */
const MAX_PARAMS = 65535;

const Statement = z
  .object({
    query: z.string().min(1, "query must not be empty"),
    // Neon's per-statement option; rows are arrays either way on /sql.
    arrayMode: z.boolean().optional(),
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

/** Rows as JSON objects with typed values (/v1). */
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
  readonly rows: readonly (readonly (string | null)[])[];
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
type ResultOf<M extends ResultMode> = M extends "json" ? StatementResult : TextResult;

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

const utf8 = new TextDecoder();

/** A caller who goes away cancels the statement on the server (a CancelRequest), not just the wait. */
async function cancellable<T>(query: { cancel(): unknown }, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
  if (!signal) return run();
  if (signal.aborted) throw gatewayError(SQLSTATE.queryCanceled, "canceling statement due to client disconnect");
  const cancel = () => void query.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  try {
    return await run();
  } finally {
    signal.removeEventListener("abort", cancel);
  }
}

async function runOne<M extends ResultMode>(
  sql: postgres.Sql | postgres.TransactionSql,
  s: Statement,
  mode: M,
  signal: AbortSignal | undefined,
): Promise<ResultOf<M>> {
  const params = (s.params ?? []).map(parameterText) as postgres.ParameterOrJSON<never>[];
  if (mode === "json") {
    const query = sql.unsafe(s.query, params);
    const result = await cancellable(query, signal, async () => await query);
    const out: StatementResult = {
      command: result.command,
      rowCount: result.count ?? null,
      fields: (result.columns ?? []).map((c) => ({ name: c.name, dataTypeID: c.type })),
      rows: [...result] as Record<string, unknown>[],
    };
    return out as ResultOf<M>;
  }
  const query = sql.unsafe(s.query, params).raw();
  const result = await cancellable(query, signal, async () => await query);
  const out: TextResult = {
    command: result.command,
    rowCount: result.count ?? null,
    fields: (result.columns ?? []).map((c) => ({
      name: c.name,
      dataTypeID: c.type,
      tableID: c.table,
      columnID: c.number,
      dataTypeSize: typeSize(c.type),
      // postgres.js does not keep the type modifier from RowDescription.
      dataTypeModifier: -1,
      format: "text" as const,
    })),
    rows: [...result].map((row) => row.map((v) => (v === null ? null : utf8.decode(v as Uint8Array)))),
  };
  return out as ResultOf<M>;
}

function beginMode(o: TransactionOptions): string {
  return [o.isolation ? `isolation level ${o.isolation}` : "", o.readOnly ? "read only" : "", o.deferrable ? "deferrable" : ""]
    .filter(Boolean)
    .join(" ");
}

export async function runSingle<M extends ResultMode>(sql: postgres.Sql, s: Statement, mode: M, signal?: AbortSignal): Promise<ResultOf<M>> {
  try {
    return await runOne(sql, s, mode, signal);
  } catch (err) {
    throw fromDriverError(err);
  }
}

export async function runBatch<M extends ResultMode>(
  sql: postgres.Sql,
  statements: readonly Statement[],
  options: TransactionOptions,
  mode: M,
  signal?: AbortSignal,
): Promise<ResultOf<M>[]> {
  try {
    return (await sql.begin(beginMode(options), async (tx) => {
      const out: ResultOf<M>[] = [];
      for (const s of statements) out.push(await runOne(tx, s, mode, signal));
      return out;
    })) as ResultOf<M>[];
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw fromDriverError(err);
  }
}
