// A pool as a request sees it: its connections, which statements to prepare
// on them, the cancels sent on them, and what a new statement waits for.
import type postgres from "postgres";
import { CancelRequests } from "./cancel-requests.ts";
import { Holds } from "./holds.ts";
import type { PreparedStatements } from "./prepared-statements.ts";

export interface Session {
  readonly sql: postgres.Sql;
  /** Whether to run `query` as a named prepared statement (counts the sighting). */
  prepare(query: string): boolean;
  /** CancelRequests sent on these connections. */
  readonly cancels: CancelRequests;
  /** What a new statement waits for before it starts (cancels in flight, batches waiting for a connection). */
  readonly holds: Holds;
  /** A connection of its own, for a batch's transaction. */
  reserve(): Promise<postgres.ReservedSql>;
}

export function createSession(
  sql: postgres.Sql,
  statements: PreparedStatements,
  options: { readonly pipelined: boolean; readonly cancelDeliveryTimeoutMs: number },
): Session {
  const holds = new Holds();
  return {
    sql,
    prepare: (query) => statements.shouldPrepare(query),
    cancels: new CancelRequests(holds, options.cancelDeliveryTimeoutMs),
    holds,
    reserve: () => {
      const reserved = sql.reserve();
      // Single statements join busy connections' pipelines ahead of a waiting batch, so a
      // connection might never fall idle for it: they wait until it has one.
      if (options.pipelined) holds.add(reserved);
      return reserved;
    },
  };
}
