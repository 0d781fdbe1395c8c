// Process settings, validated once into a frozen object. They come from the
// environment and, optionally, a JSON file named by HBAGATE_CONFIG with the
// same keys (the environment wins). PORT, as platforms set it, is the HTTP
// port unless HBAGATE_PORT says otherwise. Defaults live in this one table.
import { z } from "zod";
import { parseTrustedProxies } from "../connection/forwarded.ts";
import { parseAllowedHosts, parseCorsOrigins } from "../http/browser-guard.ts";
import { DEFAULT_PREPARED_BYTES } from "../upstream/prepared-statements.ts";

/**
 * A number as written in decimal, surrounding blanks allowed. Number(), which
 * z.coerce.number() uses, reads "" and " " as 0 and "0x400" as 1024: an empty
 * variable in a deployment template would silently turn a bound off.
 */
const decimal = <T extends z.ZodType<number, number>>(n: T) =>
  z
    .string()
    .trim()
    .regex(/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/, "expected a decimal number")
    .transform(Number)
    .pipe(n);

const port = decimal(z.number().int().min(0).max(65535));

/** A string parsed by `parse`, whose error message becomes the setting's. */
const parsed = <T>(parse: (text: string) => T) =>
  z
    .string()
    .default("")
    .transform((text, ctx) => {
      try {
        return parse(text);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    });
const seconds = decimal(z.number().min(0));

/**
 * Lambda's limit on a synchronous function's response payload: the whole JSON
 * object the handler returns (status, headers, the body as a JSON string), as
 * its "Response payload size exceeded maximum allowed payload size (6291556
 * bytes)" says. Past it the caller gets a bare 502 from AWS.
 */
export const LAMBDA_RESPONSE_PAYLOAD_BYTES = 6_291_556;
/** Of that payload, what the status, the headers and the envelope's own JSON may take (the gateway's headers are a few hundred bytes). */
const LAMBDA_ENVELOPE_BYTES = 64 * 1024;
/** The most a response body may take on Lambda, counted as the payload carries it (escaped inside a JSON string). */
export const LAMBDA_MAX_RESPONSE_BYTES = LAMBDA_RESPONSE_PAYLOAD_BYTES - LAMBDA_ENVELOPE_BYTES;

const Schema = z.object({
  HBAGATE_LISTEN_HOST: z.string().default("127.0.0.1"),
  HBAGATE_PORT: port.default(8080),
  HBAGATE_HBA_FILE: z.string().optional(),
  HBAGATE_UPSTREAM_HOST: z.string().optional(),
  HBAGATE_UPSTREAM_PORT: port.default(5432),
  HBAGATE_ANONYMOUS_USER: z.string().optional(),
  HBAGATE_POOL_MAX: decimal(z.number().int().min(1).max(1000)).default(10),
  HBAGATE_POOL_MAX_TOTAL: decimal(z.number().int().min(1).max(100_000)).default(100),
  /** One role's connections across its databases; unset: HBAGATE_POOL_MAX. */
  HBAGATE_POOL_MAX_PER_ROLE: decimal(z.number().int().min(1).max(100_000)).optional(),
  /** Connections one caller identity (a mapped principal, not the role itself) holds at once; unset: half of HBAGATE_POOL_MAX, rounded up. */
  HBAGATE_POOL_MAX_PER_IDENTITY: decimal(z.number().int().min(1).max(100_000)).optional(),
  /** Of HBAGATE_POOL_MAX_TOTAL, connections only verification logins may use (so that queries cannot make authentication wait). */
  HBAGATE_LOGIN_RESERVE: decimal(z.number().int().min(0).max(1000)).default(2),
  HBAGATE_QUEUE_TIMEOUT_MS: decimal(z.number().int().min(0)).default(10_000),
  HBAGATE_QUEUE_MAX: decimal(z.number().int().min(0)).default(1000),
  /** A pool unused this long whose connection is dead is replaced and the statement retried once. */
  HBAGATE_STALE_AFTER_MS: decimal(z.number().int().min(0)).default(5000),
  HBAGATE_IDLE_TIMEOUT: seconds.default(30),
  HBAGATE_CONNECT_TIMEOUT: seconds.default(10),
  HBAGATE_MAX_LIFETIME: seconds.default(1800),
  HBAGATE_STATEMENT_TIMEOUT_MS: decimal(z.number().int().min(0)).default(30000),
  /** The gateway's own deadline for a request's statements: cancelled then, whatever statement_timeout a caller set. */
  HBAGATE_REQUEST_TIMEOUT_MS: decimal(z.number().int().min(100)).default(60_000),
  /** Distinct statements each pool runs as prepared statements (seen twice, then prepared); 0 turns it off. */
  HBAGATE_PREPARED_STATEMENTS: decimal(z.number().int().min(0).max(10_000)).default(100),
  /**
   * UTF-8 bytes of text those statements may total per pool: every request
   * pays for it in the session reset's check (prepared-statements.ts).
   */
  HBAGATE_PREPARED_STATEMENT_BYTES: decimal(z.number().int().min(0).max(16 * 1024 * 1024)).default(DEFAULT_PREPARED_BYTES),
  /**
   * Withdrawn: pipelining put several callers' statements on one session at
   * once, where one could see what another left. Kept so that a deployment
   * still setting it is told, not silently changed.
   */
  HBAGATE_PIPELINE_DEPTH: decimal(
    z
      .number()
      .int()
      .refine((n) => n === 1, "pipelining between callers was withdrawn: it shares one session between callers' statements (unset HBAGATE_PIPELINE_DEPTH)"),
  ).optional(),
  HBAGATE_MAX_BODY_BYTES: decimal(z.number().int().min(1)).default(1024 * 1024),
  /** Interactive sessions (WebSocket at /v2) at once, authenticated or not; each holds an upstream connection, counted in HBAGATE_POOL_MAX_TOTAL. */
  HBAGATE_SESSIONS_MAX: decimal(z.number().int().min(0).max(100_000)).default(50),
  /** Sessions one role may hold at once; unset: half of HBAGATE_SESSIONS_MAX, rounded up. */
  HBAGATE_SESSIONS_MAX_PER_ROLE: decimal(z.number().int().min(1).max(100_000)).optional(),
  /**
   * Sessions one caller identity (a token's subject, a mapped principal; not the role itself) may
   * hold at once across its role's; unset: half of the per-role bound, rounded up, so that one end
   * user cannot take every session of a role that many share.
   */
  HBAGATE_SESSIONS_MAX_PER_IDENTITY: decimal(z.number().int().min(1).max(100_000)).optional(),
  /** A session waiting this long for its client (nothing running) is ended: 57P05, or 25P03 inside a transaction. */
  HBAGATE_SESSION_IDLE_MS: decimal(z.number().int().min(1)).default(300_000),
  /** A session older than this is ended at its next idle point (57P01). */
  HBAGATE_SESSION_LIFETIME_MS: decimal(z.number().int().min(1)).default(3_600_000),
  /** The largest protocol message a session's client may send (54000 past it). */
  HBAGATE_SESSION_MAX_MESSAGE_BYTES: decimal(z.number().int().min(1024).max(1024 * 1024 * 1024)).default(16 * 1024 * 1024),
  /** PostgreSQL's protocol on a TCP port of its own (psql, any driver), on HBAGATE_LISTEN_HOST: the same sessions as /v2. Unset: none. */
  HBAGATE_PG_PORT: port.optional(),
  /** From the WebSocket opening to the session being ready, authentication included (57014 past it). */
  HBAGATE_SESSION_AUTH_TIMEOUT_MS: decimal(z.number().int().min(1)).default(10_000),
  /** Comma-separated browser origins allowed to call (and by CORS), or "*"; requests from other origins are refused. */
  HBAGATE_CORS_ORIGINS: parsed(parseCorsOrigins),
  /**
   * Host names requests may be for besides IP addresses, localhost and
   * *.localhost (always allowed): comma-separated names, "*.example.com", or
   * "*" for any (the Lambda default: AWS routes by host already).
   */
  HBAGATE_ALLOWED_HOSTS: parsed(parseAllowedHosts),
  HBAGATE_MAX_RESPONSE_ROWS: decimal(z.number().int().min(1)).default(100_000),
  HBAGATE_MAX_RESPONSE_BYTES: decimal(z.number().int().min(1)).default(64 * 1024 * 1024),
  HBAGATE_VERIFIER_FILE: z.string().optional(),
  HBAGATE_IDENT_FILE: z.string().optional(),
  /** JSON {"role": "password"}: roles that log in upstream with these instead of the caller's password. */
  HBAGATE_ROLE_CREDENTIALS_FILE: z.string().optional(),
  /** The gateway's own login for catalog lookups (role membership for +group and samerole). */
  HBAGATE_SERVICE_USER: z.string().optional(),
  HBAGATE_SERVICE_PASSWORD: z.string().optional(),
  HBAGATE_SERVICE_DATABASE: z.string().default("postgres"),
  HBAGATE_ROLES_TTL_MS: decimal(z.number().int().min(0)).default(10_000),
  /** Comma-separated addresses/CIDR ranges whose X-Forwarded-* headers are believed. */
  HBAGATE_TRUSTED_PROXIES: parsed(parseTrustedProxies),
  HBAGATE_VERIFIED_TTL_MS: decimal(z.number().int().min(0)).default(60_000),
  HBAGATE_VERIFIED_MAX: decimal(z.number().int().min(1)).default(10_000),
  /** Secrets Manager: region (else AWS_REGION), an endpoint override (local testing), cache TTL, call timeout. */
  HBAGATE_SECRETS_REGION: z.string().optional(),
  HBAGATE_SECRETS_ENDPOINT: z.string().url().optional(),
  HBAGATE_SECRETS_TTL_MS: decimal(z.number().int().min(1000)).default(300_000),
  HBAGATE_SECRETS_TIMEOUT_MS: decimal(z.number().int().min(100)).default(3000),
  /** Brute-force brake per (client address, user): slow down, then lock out. */
  HBAGATE_AUTH_SLOW_AFTER: decimal(z.number().int().min(0)).default(3),
  HBAGATE_AUTH_LOCK_AFTER: decimal(z.number().int().min(1)).default(10),
  HBAGATE_AUTH_WINDOW_SECONDS: decimal(z.number().int().min(1)).default(300),
  HBAGATE_AUTH_LOCK_SECONDS: decimal(z.number().int().min(1)).default(300),
  /** Each failure past HBAGATE_AUTH_SLOW_AFTER delays its answer by this much more, up to the maximum. */
  HBAGATE_AUTH_DELAY_STEP_MS: decimal(z.number().int().min(0)).default(250),
  HBAGATE_AUTH_MAX_DELAY_MS: decimal(z.number().int().min(0)).default(2000),
  /** (client, identity) pairs with failures remembered at once (least recently failed forgotten first; locks apart). */
  HBAGATE_AUTH_MAX_TRACKED: decimal(z.number().int().min(1)).default(100_000),
  /** A statement on the shared failure table that takes longer counts as the table being unusable (per-instance counting meanwhile). */
  HBAGATE_AUTH_SHARED_TIMEOUT_MS: decimal(z.number().int().min(1)).default(2000),
  /** Without a configuration (secrets unreachable at a Lambda cold start), requests try to load it at most this often. */
  HBAGATE_CONFIG_RETRY_MS: decimal(z.number().int().min(0)).default(1000),
  /**
   * A table in the service database where every instance counts failures (lib/upstream/failure-table.ts):
   * a pair locked on one instance is locked on all. Needs HBAGATE_SERVICE_USER. Unset: per instance only.
   */
  HBAGATE_AUTH_SHARED_TABLE: z
    .string()
    .regex(/^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$/, "a lower-case table name, optionally schema-qualified (letters, digits, _)")
    .optional(),
  /** The key of the shared table's digests (every instance the same); unset: the service user's password. */
  HBAGATE_AUTH_SHARED_KEY: z.string().min(16).optional(),
  HBAGATE_LDAP_CONNECT_TIMEOUT_MS: decimal(z.number().int().min(1)).default(5000),
  HBAGATE_LDAP_TIMEOUT_MS: decimal(z.number().int().min(1)).default(5000),
  /** PEM CA bundle for ldaps and StartTLS (verification is always on). */
  HBAGATE_LDAP_CA_FILE: z.string().optional(),
  /** oauth lines: the `aud` a token must carry (one of its audiences); unset: not checked. */
  HBAGATE_OAUTH_AUDIENCE: z.string().min(1).optional(),
  /** PEM CA bundle trusted for the issuers' discovery documents and JWKS (verification is always on). */
  HBAGATE_OAUTH_CA_FILE: z.string().optional(),
  /** Accepted signature algorithms, comma-separated; asymmetric only (HS* and none are refused). */
  HBAGATE_OAUTH_ALGORITHMS: z
    .string()
    .default("RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA,Ed25519")
    .transform((v) => v.split(",").map((a) => a.trim()).filter(Boolean))
    .refine((list) => list.length > 0 && list.every((a) => /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$|^ES256K$/.test(a)), "asymmetric JWS algorithms only (RS*, PS*, ES*, EdDSA, Ed25519)"),
  /** Seconds of clock skew allowed on a token's exp and nbf. */
  HBAGATE_OAUTH_LEEWAY_SECONDS: decimal(z.number().int().min(0).max(300)).default(30),
  /** The claim that is a token's identity (matched against the role, or through map=). */
  HBAGATE_OAUTH_IDENTITY_CLAIM: z.string().min(1).default("sub"),
  /** The claim naming the role a token asks for (/v1 without a user; delegate_ident_mapping=1). */
  HBAGATE_OAUTH_ROLE_CLAIM: z.string().min(1).default("role"),
  /** The role a bearer request on /v1 asks for when its token has no role claim; unset: such requests are refused. */
  HBAGATE_OAUTH_DEFAULT_ROLE: z.string().min(1).optional(),
  /** An issuer's keys are refetched in the background once this old. */
  HBAGATE_OAUTH_KEYS_REFRESH_MS: decimal(z.number().int().min(1000)).default(300_000),
  /** Keys are used at most this long after their last successful fetch (how long an issuer outage is ridden out). */
  HBAGATE_OAUTH_KEYS_MAX_STALE_MS: decimal(z.number().int().min(1000)).default(3_600_000),
  /** At most one fetch of an issuer's keys per this long; a token naming a key id not seen yet waits for the next one. */
  HBAGATE_OAUTH_KEYS_COOLDOWN_MS: decimal(z.number().int().min(100).max(10_000)).default(1000),
  /** One discovery or JWKS fetch gives up after this long. */
  HBAGATE_OAUTH_FETCH_TIMEOUT_MS: decimal(z.number().int().min(1)).default(5000),
  /** A discovery document or JWKS larger than this is refused. */
  HBAGATE_OAUTH_FETCH_MAX_BYTES: decimal(z.number().int().min(1024)).default(1 << 20),
  /** A Unix socket to listen on as well; its requests are hba `local` connections. */
  HBAGATE_UNIX_SOCKET: z.string().optional(),
  /** HTTPS on the TCP listener: both files, or neither. */
  HBAGATE_TLS_CERT_FILE: z.string().optional(),
  HBAGATE_TLS_KEY_FILE: z.string().optional(),
  /**
   * PEM CA certificates client certificates are verified against (PostgreSQL's ssl_ca_file): the
   * TLS listener asks callers for one (without refusing those who send none), a trusted proxy's
   * HBAGATE_CLIENT_CERT_HEADER is checked against it, and on Lambda API Gateway's is checked again.
   */
  HBAGATE_TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  /** PEM CRLs (ssl_crl_file): certificates they revoke are refused; every issuer below a root then needs its CRL. */
  HBAGATE_TLS_CLIENT_CRL_FILE: z.string().min(1).optional(),
  /** The header a trusted proxy (HBAGATE_TRUSTED_PROXIES) puts the client's certificate in: x-forwarded-client-cert, x-amzn-mtls-clientcert, … */
  HBAGATE_CLIENT_CERT_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "a header name")
    .transform((v) => v.toLowerCase())
    .optional(),
  /** TLS to the upstream: disable, require (encrypt, no verification) or verify-full (certificate and host name). */
  HBAGATE_UPSTREAM_SSL: z.enum(["disable", "require", "verify-full"]).default("disable"),
  HBAGATE_UPSTREAM_CA_FILE: z.string().optional(),
}).superRefine((s, ctx) => {
  if ((s.HBAGATE_TLS_CERT_FILE === undefined) !== (s.HBAGATE_TLS_KEY_FILE === undefined)) {
    ctx.addIssue({ code: "custom", path: ["HBAGATE_TLS_CERT_FILE"], message: "HBAGATE_TLS_CERT_FILE and HBAGATE_TLS_KEY_FILE go together" });
  }
  if (s.HBAGATE_TLS_CLIENT_CRL_FILE !== undefined && s.HBAGATE_TLS_CLIENT_CA_FILE === undefined) {
    ctx.addIssue({ code: "custom", path: ["HBAGATE_TLS_CLIENT_CRL_FILE"], message: "a CRL needs HBAGATE_TLS_CLIENT_CA_FILE, the CA whose certificates it revokes" });
  }
  if (s.HBAGATE_CLIENT_CERT_HEADER !== undefined) {
    // A forwarded certificate is verified like any other: never believed on the proxy's word alone.
    if (s.HBAGATE_TLS_CLIENT_CA_FILE === undefined) {
      ctx.addIssue({ code: "custom", path: ["HBAGATE_CLIENT_CERT_HEADER"], message: "forwarded client certificates are verified against HBAGATE_TLS_CLIENT_CA_FILE, which is not set" });
    }
    if (s.HBAGATE_TRUSTED_PROXIES.count === 0) {
      ctx.addIssue({ code: "custom", path: ["HBAGATE_CLIENT_CERT_HEADER"], message: "the header is believed only from HBAGATE_TRUSTED_PROXIES, which lists none" });
    }
  }
});

const KEYS = new Set(Object.keys(Schema.shape));
/** Every setting's name, as the schema lists them. */
export const SETTING_KEYS: readonly string[] = [...KEYS];

export type Settings = Readonly<z.infer<typeof Schema>>;

/**
 * Defaults on AWS Lambda, where they differ from the table above (the
 * environment still wins). One instance serves one request at a time: pools
 * of one connection. Any Host: AWS routes by host before the function runs (a
 * function URL or API Gateway answers only its own domain and the custom
 * domains configured for it, a CloudFront distribution only its aliases), so
 * a rebound DNS name reaches no function. Responses fit Lambda's payload
 * limit, so a large result is the gateway's 507, not AWS's bare 502 (and a
 * 256 MB function never holds more rows than that). The upstream's certificate
 * is verified: against HBAGATE_UPSTREAM_CA_FILE, or Node's roots and
 * NODE_EXTRA_CA_CERTS (/var/runtime/ca-cert.pem holds the Amazon RDS roots,
 * which Lambda's Node runtime does not trust unless told to); `require`
 * (encrypted, unverified) only when set.
 */
export const LAMBDA_DEFAULTS: Readonly<Partial<Record<keyof z.infer<typeof Schema>, string>>> = {
  HBAGATE_POOL_MAX: "1",
  HBAGATE_POOL_MAX_TOTAL: "4",
  HBAGATE_IDLE_TIMEOUT: "60",
  HBAGATE_STALE_AFTER_MS: "1000",
  HBAGATE_ALLOWED_HOSTS: "*",
  HBAGATE_MAX_RESPONSE_BYTES: String(LAMBDA_MAX_RESPONSE_BYTES),
  HBAGATE_UPSTREAM_SSL: "verify-full",
};

/** Values from the HBAGATE_CONFIG file: an object of known keys with string, number or boolean values. */
function fileValues(path: string, readFile: (path: string) => string): { values: Record<string, string>; problems: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(readFile(path));
  } catch (err) {
    return { values: {}, problems: [`HBAGATE_CONFIG=${JSON.stringify(path)}: ${(err as Error).message}`] };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { values: {}, problems: [`${path}: expected a JSON object of HBAGATE_* settings`] };
  }
  const values: Record<string, string> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (!KEYS.has(key)) problems.push(`${path}: unknown setting "${key}"`);
    else if (["string", "number", "boolean"].includes(typeof value)) values[key] = String(value);
    else problems.push(`${path}: ${key} must be a string, number or boolean`);
  }
  return { values, problems };
}

/** A caller that cannot read files: HBAGATE_CONFIG is then an error, never silently ignored. */
const noFileReader = (): string => {
  throw new Error("this entry point reads no configuration file");
};

/** Parse the settings (the environment over the HBAGATE_CONFIG file over `defaults`); the error lists every bad setting with its value. */
export function loadSettings(
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string = noFileReader,
  /** Values under the file and the environment (a runtime's own defaults). */
  defaults: Readonly<Record<string, string | undefined>> = {},
): Settings {
  const file = env.HBAGATE_CONFIG ? fileValues(env.HBAGATE_CONFIG, readFile) : { values: {}, problems: [] };
  const merged: Record<string, string | undefined> = { ...defaults, ...file.values };
  for (const key of KEYS) if (env[key] !== undefined) merged[key] = env[key];
  if (merged.HBAGATE_PORT === undefined && env.PORT !== undefined) merged.HBAGATE_PORT = env.PORT;
  const parsed = Schema.safeParse(merged);
  const problems = [...file.problems];
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const key = String(i.path[0] ?? "?");
      problems.push(`${key}=${JSON.stringify(merged[key] ?? "")}: ${i.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new Error(`invalid settings:\n  ${problems.join("\n  ")}`);
  return Object.freeze(parsed.data);
}

/** The settings on AWS Lambda: its defaults under the environment, and nothing Lambda could not deliver. */
export function loadLambdaSettings(env: Readonly<Record<string, string | undefined>>, readFile?: (path: string) => string): Settings {
  // Lambda's defaults are defaults: an HBAGATE_CONFIG file (bundled with the function) overrides them, as the environment does.
  const settings = loadSettings(env, readFile, LAMBDA_DEFAULTS);
  if (settings.HBAGATE_MAX_RESPONSE_BYTES > LAMBDA_MAX_RESPONSE_BYTES) {
    throw new Error(
      `invalid settings:\n  HBAGATE_MAX_RESPONSE_BYTES=${JSON.stringify(env.HBAGATE_MAX_RESPONSE_BYTES ?? "")}: at most ${LAMBDA_MAX_RESPONSE_BYTES} on Lambda, whose responses are limited to ${LAMBDA_RESPONSE_PAYLOAD_BYTES} bytes`,
    );
  }
  return settings;
}
