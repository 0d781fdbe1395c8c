// A request body -> the statement(s) to run, validated before anything is sent:
// one statement, or {"queries": [...]} for a batch in one transaction.
import { z } from "zod";
import { gatewayError, SQLSTATE } from "../errors.ts";
import { refuseUnsafe } from "./refused-statements.ts";

/**
 * Bind parameters in one statement: PostgreSQL takes 65535, postgres.js
 * refuses 65534 and more (with an error that is not the caller's to read).
 */
const MAX_PARAMS = 65533;
/** Deeper JSON parameters are refused: turning them into text would exhaust the stack. */
const MAX_PARAM_DEPTH = 100;

/** Nesting depth of a JSON value, walked without recursion. */
function depth(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (d + 1 > max) max = d + 1;
    if (max > MAX_PARAM_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

const Statement = z
  .object({
    query: z.string().min(1, "query must not be empty"),
    // Neon's per-statement option; rows are arrays either way on /sql.
    arrayMode: z.boolean().optional(),
    // Any JSON value; each is sent as text (objects and arrays as JSON text).
    params: z.array(z.unknown()).max(MAX_PARAMS, `at most ${MAX_PARAMS} parameters per statement`).optional(),
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

/** Whether a string is whole characters: no UTF-16 surrogate without its other half (String.prototype.isWellFormed, Node 20). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

const notUnicode = (what: string) =>
  gatewayError(SQLSTATE.characterNotInRepertoire, `${what} is not valid Unicode: it holds half of a UTF-16 surrogate pair, which UTF-8 cannot carry`, {
    hint: "A \\uD800-\\uDFFF escape in JSON must come as a high surrogate followed by a low one.",
  });

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
    // Sent on as UTF-8, where a lone surrogate would silently become U+FFFD: refused instead, as
    // PostgreSQL refuses bytes that are not UTF-8. (A parameter sent as JSON, an object or a list,
    // keeps its \uD800 escapes as text, and PostgreSQL's JSON input judges them.)
    if (!wellFormed(s.query)) throw notUnicode("the query");
    (s.params ?? []).forEach((p, i) => {
      if (typeof p === "string" && !wellFormed(p)) throw notUnicode(`parameter $${i + 1}`);
      if (depth(p) > MAX_PARAM_DEPTH) {
        throw gatewayError(SQLSTATE.invalidParameterValue, `parameter $${i + 1} is nested deeper than ${MAX_PARAM_DEPTH} levels`);
      }
    });
  }
  refuseUnsafe(statements, "queries" in body);
  return "queries" in body ? { kind: "batch", statements: body.queries } : { kind: "single", statement: body };
}
