// Statements refused before anything is sent: they would take the shared
// session somewhere the next caller could find it (an open transaction, a
// named prepared statement, a listener), or into a protocol sub-mode the
// HTTP bridge does not carry (COPY). Decided by the statement's first
// keyword, read as PostgreSQL's lexer and grammar read it (scan.l, gram.y):
// whitespace, `--` comments, nested `/* */` comments and empty statements
// (`;`, which the grammar drops) before it; an unquoted keyword,
// case-insensitive. A statement sent with the extended protocol is one
// statement, and a function cannot COPY to or from the client or start a
// transaction block, so the first keyword decides.
import { gatewayError, SQLSTATE, type GatewayError } from "../errors.ts";

/** The first keyword, lowercased (ASCII only, as PostgreSQL folds keywords); "" when there is none. */
export function leadingKeyword(query: string): string {
  let i = 0;
  const n = query.length;
  for (;;) {
    while (i < n && " \t\n\r\f\v;".includes(query[i]!)) i++;
    if (query.startsWith("--", i)) {
      while (i < n && query[i] !== "\n" && query[i] !== "\r") i++;
      continue;
    }
    if (query.startsWith("/*", i)) {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (query.startsWith("/*", i)) {
          depth++;
          i += 2;
        } else if (query.startsWith("*/", i)) {
          depth--;
          i += 2;
        } else i++;
      }
      continue;
    }
    break;
  }
  const match = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(query.slice(i, i + 64));
  return match ? match[0].replace(/[A-Z]/g, (c) => c.toLowerCase()) : "";
}

const TRANSACTION_CONTROL = new Set(["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"]);

/** Why `query` is refused (in a batch when `inBatch`), or undefined. */
export function refusal(query: string, inBatch: boolean): GatewayError | undefined {
  const keyword = leadingKeyword(query);
  if (keyword === "copy") {
    return gatewayError(SQLSTATE.featureNotSupported, "COPY is not supported by hbagate", {
      hint: "Send rows as parameters (for example INSERT … SELECT * FROM json_populate_recordset(null::t, $1)), or use COPY over a direct connection.",
    });
  }
  if (TRANSACTION_CONTROL.has(keyword)) {
    return inBatch
      ? gatewayError(SQLSTATE.featureNotSupported, `${keyword.toUpperCase()} is not allowed inside a batch: the batch is one transaction already`, {
          hint: "Send the statements between BEGIN and COMMIT as the batch; the Neon-Batch-* headers set its isolation level and read-only mode.",
        })
      : gatewayError(SQLSTATE.featureNotSupported, `${keyword.toUpperCase()} is not allowed on its own: each request runs on a shared session`, {
          hint: 'Send {"queries": [...]}: a batch runs its statements in one transaction.',
        });
  }
  if (keyword === "prepare" || keyword === "execute" || keyword === "deallocate" || keyword === "discard") {
    return gatewayError(SQLSTATE.featureNotSupported, `${keyword.toUpperCase()} is not allowed: sessions are shared, and the gateway prepares statements itself`, {
      hint: "Send the statement with its parameters; repeated statements are prepared automatically.",
    });
  }
  if (keyword === "listen") {
    return gatewayError(SQLSTATE.featureNotSupported, "LISTEN is not supported over HTTP: notifications would never be delivered");
  }
  return undefined;
}

/** Throws the refusal for the first refused statement. */
export function refuseUnsafe(queries: readonly { readonly query: string }[], inBatch: boolean): void {
  for (const s of queries) {
    const e = refusal(s.query, inBatch);
    if (e) throw e;
  }
}
