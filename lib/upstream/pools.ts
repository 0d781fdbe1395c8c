// postgres.js pools, one per (database, role). The password is a function, so
// postgres.js asks for it at every login and a changed password needs no
// rebuild (porsager/postgres calls `pass` per connection).
import postgres from "postgres";
import { gatewayError, SQLSTATE } from "../errors.ts";
import { passwordFailedMessage } from "../auth/messages.ts";
import { fromDriverError } from "./errors.ts";
import { jsonTypes } from "./json-types.ts";

export interface UpstreamSettings {
  readonly host: string;
  readonly port: number;
  /** Connections per (database, role) pool. */
  readonly max: number;
  /** Seconds. */
  readonly idleTimeout: number;
  readonly connectTimeout: number;
  readonly maxLifetime: number;
  /** Milliseconds; 0 = the server's default. */
  readonly statementTimeout: number;
}

export class Pools {
  private readonly pools = new Map<string, { sql: postgres.Sql; password: string | undefined }>();
  constructor(private readonly settings: UpstreamSettings) {}

  private options(database: string, user: string) {
    const s = this.settings;
    return {
      host: s.host,
      port: s.port,
      database,
      username: user,
      idle_timeout: s.idleTimeout,
      connect_timeout: s.connectTimeout,
      max_lifetime: s.maxLifetime,
      prepare: false,
      types: jsonTypes,
      onnotice: () => {},
      // Text formats the JSON conversions and Neon's clients rely on.
      connection: {
        DateStyle: "ISO, MDY",
        IntervalStyle: "postgres",
        bytea_output: "hex",
        ...(s.statementTimeout > 0 ? { statement_timeout: s.statementTimeout } : {}),
      },
    } as const;
  }

  /** The pool for (database, role); `password` is the latest verified one for passthrough logins. */
  pool(database: string, user: string, password?: string): postgres.Sql {
    const key = JSON.stringify([database, user]);
    let entry = this.pools.get(key);
    if (!entry) {
      const holder: { sql: postgres.Sql; password: string | undefined } = { sql: undefined as never, password };
      holder.sql = postgres({ ...this.options(database, user), max: this.settings.max, pass: () => holder.password ?? "" });
      this.pools.set(key, holder);
      entry = holder;
    }
    if (password !== undefined) entry.password = password;
    return entry.sql;
  }

  /** A small pool for the gateway's own catalog lookups, logged in with configured credentials. */
  service(database: string, user: string, password: () => string): postgres.Sql {
    const key = JSON.stringify(["service", database, user]);
    let entry = this.pools.get(key);
    if (!entry) {
      entry = { sql: postgres({ ...this.options(database, user), max: 1, pass: password }), password: undefined };
      this.pools.set(key, entry);
    }
    return entry.sql;
  }

  /** Verify a password by logging in with it on a connection of its own. */
  async login(database: string, user: string, password: string): Promise<void> {
    const sql = postgres({ ...this.options(database, user), max: 1, pass: password });
    try {
      await sql`select 1`;
    } catch (err) {
      const e = fromDriverError(err);
      // Wrong password, unknown role: the same answer, as PostgreSQL gives.
      if (e.code === SQLSTATE.invalidPassword) throw gatewayError(SQLSTATE.invalidPassword, passwordFailedMessage(user));
      throw e;
    } finally {
      await sql.end({ timeout: 0 });
    }
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.sql.end({ timeout: 1 })));
  }
}
