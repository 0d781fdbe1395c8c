// The gateway's own statements (role membership, the shared failure table)
// on its service login, as one function: a statement's text and parameters in,
// rows out. Pools implement it with the service user's rotation handled
// (pools.ts); a plain postgres.js client serves as one in tests.
import type postgres from "postgres";

export type ServiceQuery = <T extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<T[]>;

/** A postgres.js client as a ServiceQuery (no rotation handling). */
export const serviceQueryOf =
  (sql: postgres.Sql): ServiceQuery =>
  async <T extends object>(text: string, params: readonly unknown[] = []) =>
    (await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[])) as unknown as T[];
