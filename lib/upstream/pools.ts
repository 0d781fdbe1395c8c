// postgres.js pools, one per (database, role). The password is a function, so
// postgres.js asks for it at every login and a changed password needs no
// rebuild (porsager/postgres calls `pass` per connection).
import postgres from "postgres";
import { gatewayError, SQLSTATE } from "../errors.ts";
import { passwordFailedMessage } from "../auth/messages.ts";
import { fromDriverError } from "./errors.ts";
import { jsonTypes } from "./json-types.ts";
import type { StartupParameters } from "../connection/caller.ts";

export interface UpstreamSettings {
  readonly host: string;
  readonly port: number;
  /** Connections per (database, role) pool. */
  readonly max: number;
  /** Bound on connections across all pools; the least recently used pool is closed to make room. */
  readonly maxTotal: number;
  /** Seconds. */
  readonly idleTimeout: number;
  readonly connectTimeout: number;
  readonly maxLifetime: number;
  /** Milliseconds; 0 = the server's default. */
  readonly statementTimeout: number;
  /** TLS to the upstream (postgres.js `ssl`): false, "require", or verification options. */
  readonly ssl?: false | "require" | { readonly ca: string; readonly rejectUnauthorized: true };
}

interface Entry {
  readonly sql: postgres.Sql;
  password: string | undefined;
}

export class Pools {
  /** Callers' pools in least-recently-used-first order (a Map iterates in insertion order). */
  private readonly pools = new Map<string, Entry>();
  private readonly servicePools = new Map<string, postgres.Sql>();
  constructor(
    private readonly settings: UpstreamSettings,
    /** Configured upstream passwords by role, asked at every login (so a rotated one needs no rebuild). */
    private readonly credentials: (role: string) => string | undefined = () => undefined,
  ) {
    if (settings.maxTotal < settings.max) throw new RangeError("maxTotal must be at least max");
  }

  /** How many callers' pools exist (each may hold up to `max` connections). */
  get size(): number {
    return this.pools.size;
  }

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
      ssl: s.ssl === undefined || s.ssl === false ? false : s.ssl === "require" ? "require" : { ...s.ssl },
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
  pool(database: string, user: string, password?: string, startup: StartupParameters = {}): postgres.Sql {
    // Sessions with other startup parameters are other sessions: a pool of their own.
    const key = JSON.stringify([database, user, startup.application_name ?? null, startup.options ?? null]);
    let entry = this.pools.get(key);
    if (entry) {
      this.pools.delete(key);
    } else {
      this.makeRoom();
      const base = this.options(database, user);
      const created: Entry = {
        sql: postgres({
          ...base,
          connection: { ...base.connection, ...startup },
          max: this.settings.max,
          // A role with configured credentials logs in with them; otherwise with the caller's own password.
          pass: () => this.credentials(user) ?? created.password ?? "",
        }),
        password,
      };
      entry = created;
    }
    this.pools.set(key, entry);
    if (password !== undefined) entry.password = password;
    return entry.sql;
  }

  /** Close least recently used pools until one more fits under maxTotal. */
  private makeRoom(): void {
    const { max, maxTotal } = this.settings;
    for (const [key, old] of this.pools) {
      if ((this.pools.size + 1) * max <= maxTotal) break;
      this.pools.delete(key);
      // In-flight statements get a few seconds to finish; new ones go to a new pool.
      void old.sql.end({ timeout: 5 });
    }
  }

  /** A small pool for the gateway's own catalog lookups, logged in with configured credentials. */
  service(database: string, user: string, password: () => string): postgres.Sql {
    const key = JSON.stringify([database, user]);
    let sql = this.servicePools.get(key);
    if (!sql) {
      sql = postgres({ ...this.options(database, user), max: 1, pass: password });
      this.servicePools.set(key, sql);
    }
    return sql;
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
    const all = [...[...this.pools.values()].map((e) => e.sql), ...this.servicePools.values()];
    this.pools.clear();
    this.servicePools.clear();
    await Promise.all(all.map((sql) => sql.end({ timeout: 1 })));
  }
}
