// What the gateway's upstream connections are: where PostgreSQL is, how many
// connections and for how long, TLS, and the options every postgres.js pool
// is created with.
import { isIP } from "node:net";
import { jsonTypes } from "./json-types.ts";

export interface UpstreamSettings {
  readonly host: string;
  readonly port: number;
  /** Connections per (database, role) pool. */
  readonly max: number;
  /** Bound on upstream connections open at once, of every kind; idle ones close, least recently used first, to make room. */
  readonly maxTotal: number;
  /** Bound on one role's connections across its databases; default `max`. */
  readonly maxPerRole?: number;
  /** Bound on the connections one caller identity (a mapped principal, not the role itself) holds at once; default half of `max`. */
  readonly maxPerIdentity?: number;
  /** Of maxTotal, how many are kept for verification logins; default 2. */
  readonly loginReserve?: number;
  /** How long a request may wait for a free connection before 53300, in milliseconds. */
  readonly queueTimeoutMs?: number;
  /** How many requests may wait at once; more are refused at once with 53300. */
  readonly maxQueue?: number;
  /**
   * A pool unused for longer than this (a Lambda instance thawed, a NAT
   * timeout) has its connection checked before a request is written to it;
   * a dead one is replaced and the request runs on a new one. A request
   * once written is never run again. Milliseconds; default 5000.
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
  /** UTF-8 bytes of text those statements may total (prepared-statements.ts); default 32 KiB. */
  readonly preparedStatementBytes?: number;
  /**
   * Bytes one message (a row) from the server may announce before the pool
   * connection is cut (wire-connection.ts): a bound on what one row can make
   * the gateway hold, set above any response it would send. Unset: 1 GiB,
   * PostgreSQL's own limit.
   */
  readonly maxAnswerBytes?: number;
  /** TLS to the upstream (postgres.js `ssl`): false, "require" (unverified), or verification against `ca` (else Node's roots and NODE_EXTRA_CA_CERTS). */
  readonly ssl?: false | "require" | { readonly ca?: string; readonly rejectUnauthorized: true };
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
  /**
   * The database refused the configured password: the passwords the role may
   * have while its secret rotates, most likely first (the secret's current
   * version fetched again, then its pending and previous ones). Empty when
   * there is nothing else to try (a literal password).
   */
  alternatives(role: string): Promise<readonly string[]>;
  /** Log in as `role` with `password` from now on (one of its alternatives), until its secret's current version changes. */
  prefer(role: string, password: string | undefined): void;
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
    // Verified: against the upstream's own name. postgres.js, given a socket of ours, names none,
    // and Node would then check the certificate for "localhost".
    ssl: s.ssl === undefined || s.ssl === false ? false : s.ssl === "require" ? "require" : { ...s.ssl, host: s.host, ...(isIP(s.host) ? {} : { servername: s.host }) },
    prepare: false,
    types: jsonTypes,
    onnotice: () => {},
    // Seconds before reconnecting after a failed attempt: postgres.js's default grows to 20 s, which
    // a pool would keep long after its server came back.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    // Text formats the JSON conversions and Neon's clients rely on.
    connection: {
      DateStyle: "ISO, MDY",
      IntervalStyle: "postgres",
      bytea_output: "hex",
      ...(s.statementTimeout > 0 ? { statement_timeout: s.statementTimeout } : {}),
    },
  } as const;
}
