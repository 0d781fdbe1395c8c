// What the gateway's upstream connections are: where PostgreSQL is, how many
// connections and for how long, TLS, and the options every postgres.js pool
// is created with.
import { jsonTypes } from "./json-types.ts";

export interface UpstreamSettings {
  readonly host: string;
  readonly port: number;
  /** Connections per (database, role) pool. */
  readonly max: number;
  /** Bound on connections across all pools; the least recently used pool is closed to make room. */
  readonly maxTotal: number;
  /** How long a request may wait for a free connection before 53300, in milliseconds. */
  readonly queueTimeoutMs?: number;
  /** How many requests may wait at once; more are refused at once with 53300. */
  readonly maxQueue?: number;
  /**
   * A pool unused for longer than this whose connection turns out dead (a
   * Lambda instance thawed, a NAT timeout) is replaced and the statement
   * retried once: the server cannot have run it on a connection that was
   * already gone. Milliseconds; default 5000.
   */
  readonly staleAfterMs?: number;
  /** Seconds. */
  readonly idleTimeout: number;
  readonly connectTimeout: number;
  readonly maxLifetime: number;
  /** Milliseconds; 0 = the server's default. */
  readonly statementTimeout: number;
  /** Distinct statements a pool may run as prepared statements (0: none); default 100. */
  readonly preparedStatements?: number;
  /**
   * Statements that may be in flight on one connection once all of a pool's
   * connections are busy (PostgreSQL's pipeline) instead of waiting for one
   * to be free; default 1 (none pipelined). Several callers' statements then
   * share a write and a read, and PostgreSQL reads them in one go; a
   * statement can wait behind a slow one on its connection.
   */
  readonly pipelineDepth?: number;
  /** TLS to the upstream (postgres.js `ssl`): false, "require", or verification options. */
  readonly ssl?: false | "require" | { readonly ca: string; readonly rejectUnauthorized: true };
}

/** Configured upstream passwords, for roles whose callers' passwords the database does not know. */
export interface RoleCredentials {
  /**
   * The configured password for a role, or undefined to log in with the
   * caller's own. Asked for every request, so it answers at once when it can
   * (no configured credentials, a literal one) and with a promise only when a
   * secret has to be fetched.
   */
  password(role: string): string | undefined | Promise<string | undefined>;
  /** The database refused the configured password: fetch it again. True when a retry may help. */
  refresh(role: string): Promise<boolean>;
}

/** What postgres.js is given for a (database, role): the settings, and the text formats the gateway relies on. */
export function driverOptions(s: UpstreamSettings, database: string, user: string) {
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
