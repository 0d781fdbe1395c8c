// The HTTP surface: routes, body limits, JSON in and out, and the single place
// where a GatewayError becomes an HTTP status. Runtime-neutral (Request/Response).
import { Hono, type Context, type Handler } from "hono";
import { cors } from "hono/cors";
import { callerFor, decodeBearer, identifyCaller, startupParameters, type Caller, type CallerSettings, type Credential, type PeerInfo } from "../connection/caller.ts";
import { parseNeonConnectionString } from "../connection/neon-connection-string.ts";
import { forwardedHosts, forwardedPeer, type ForwardedCertificate, type TrustedProxies } from "../connection/forwarded.ts";
import { clientAddress, isLoopback } from "../connection/client-address.ts";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { gatewayCore, type CoreDeps, type GatewayCore, type Lease } from "../gateway/connect.ts";
import { responseWithinLimits, type ResponseLimits } from "../query/limits.ts";
import { parseQueryRequest, type QueryRequest, type TransactionOptions } from "../query/request.ts";
import type { ResultMode, ResultOf } from "../query/results.ts";
import { runBatch, runSingle } from "../query/run.ts";
import { neonError, neonResultJson, neonStatus } from "./neon-format.ts";
import { resultJson, resultsJson } from "./result-json.ts";
import { httpStatus } from "./status.ts";
import { readBodyText } from "./read-body.ts";
import { browserGuard, requireContentType, type AllowedHosts } from "./browser-guard.ts";
import type { LogEvent } from "../log.ts";

export interface GatewayDeps extends CoreDeps {
  /** The connection as the runtime saw it (socket peer, TLS). */
  peer(c: Context): PeerInfo;
  /** Proxies whose X-Forwarded-For/-Proto are believed. */
  readonly trustedProxies: TrustedProxies;
  /** The header in which those proxies forward their client's certificate, and its verification. */
  readonly forwardedCertificate?: ForwardedCertificate | undefined;
  readonly caller: CallerSettings;
  readonly maxBodyBytes: number;
  readonly responseLimits: ResponseLimits;
  /** Browser origins allowed to call; empty: none (and no CORS headers); ["*"]: any origin, never with credentials. */
  readonly corsOrigins: readonly string[];
  /** Host names requests may be for, besides IP addresses and localhost names (DNS rebinding finds nothing). */
  readonly allowedHosts: AllowedHosts;
  /** The gateway's own bound on a request's statements, whatever the session's statement_timeout (default 60 s). */
  readonly requestTimeoutMs?: number;
  /**
   * Interactive sessions (PostgreSQL's protocol over a WebSocket at /v2), where
   * the runtime can upgrade a request: given the core and the caller's
   * connection, the handler that upgrades. Absent: /v2 answers that sessions
   * are not available here.
   */
  readonly sessions?: (core: GatewayCore, peer: (c: Context) => PeerInfo) => Handler;
  /** What /readyz reports: each check's state, ready only when all are "ok". */
  readiness(): Promise<Readonly<Record<string, string>>>;
  log(event: LogEvent): void;
}

// A Map, not an object literal: a header naming Object.prototype's members (`constructor`) is
// not a level.
const ISOLATION: ReadonlyMap<string, TransactionOptions["isolation"]> = new Map([
  ["ReadUncommitted", "read uncommitted"],
  ["ReadCommitted", "read committed"],
  ["RepeatableRead", "repeatable read"],
  ["Serializable", "serializable"],
]);

/** Neon's batch headers, honoured on both endpoints. */
function transactionOptions(header: (name: string) => string | undefined): TransactionOptions {
  const level = header("neon-batch-isolation-level");
  const isolation = level === undefined ? undefined : ISOLATION.get(level);
  if (level !== undefined && !isolation) {
    throw gatewayError(SQLSTATE.invalidParameterValue, `invalid Neon-Batch-Isolation-Level: "${level}"`, {
      hint: `Use one of ${[...ISOLATION.keys()].join(", ")}.`,
    });
  }
  return {
    ...(isolation ? { isolation } : {}),
    readOnly: header("neon-batch-read-only") === "true",
    deferrable: header("neon-batch-deferrable") === "true",
  };
}

const V1_BODY = ["application/json"] as const;
// Neon's client posts its JSON with fetch's default type for a string body,
// text/plain. That is safe here: /sql also needs a Neon-Connection-String
// header, which no browser sends cross-origin without a preflight.
const NEON_BODY = ["application/json", "text/plain"] as const;

const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;


function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const code = (cause as { code?: unknown }).code;
  return `${cause.name}${typeof code === "string" ? ` ${code}` : ""}: ${cause.message}`;
}

function errorBody(e: GatewayError) {
  return { error: e.fields };
}

export function createApp(deps: GatewayDeps): Hono {
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof GatewayError) {
      const status = httpStatus(err.code);
      // The cause stays in the log (the caller never sees it): a driver's error, never a password.
      if (status >= 500) deps.log({ level: "warn", msg: "request failed", code: err.code, error: err.message, ...(err.cause === undefined ? {} : { cause: describeCause(err.cause) }) });
      // Refusals from the browser guard reach /sql here too: answered as Neon does.
      if (c.req.path === "/sql") return c.json(neonError(err), neonStatus(err.code) as 400);
      return c.json(errorBody(err), status as 400);
    }
    // Anything unexpected: log it, tell the caller nothing about it.
    deps.log({ level: "error", msg: "unhandled error", error: err instanceof Error ? err.stack ?? err.message : String(err) });
    return c.json(errorBody(gatewayError(SQLSTATE.internalError, "internal error")), 500);
  });

  app.notFound((c) => {
    const e = gatewayError(SQLSTATE.undefinedObject, `no such endpoint: ${c.req.method} ${new URL(c.req.url).pathname}`);
    // Neon's clients read /sql's errors in Neon's shape, whatever went wrong.
    return c.req.path === "/sql" ? c.json(neonError(e), 404) : c.json(errorBody(e), 404);
  });

  // First of all, on every path: a request for a host that is not ours, or from a page whose origin is not allowed.
  app.use(
    browserGuard({
      origins: deps.corsOrigins,
      hosts: deps.allowedHosts,
      forwardedHosts: (c) => forwardedHosts(deps.peer(c), (name) => c.req.header(name), deps.trustedProxies),
    }),
  );

  if (deps.corsOrigins.length > 0) {
    const wildcard = deps.corsOrigins.includes("*");
    const allowed = new Set(deps.corsOrigins);
    const policy = cors({
      origin: wildcard ? "*" : (origin) => (allowed.has(origin) ? origin : null),
      allowMethods: ["POST", "OPTIONS"],
      allowHeaders: ["authorization", "content-type", "neon-connection-string", "neon-raw-text-output", "neon-array-mode", "neon-batch-isolation-level", "neon-batch-read-only", "neon-batch-deferrable"],
      // Credentials are never allowed together with a wildcard origin.
      credentials: !wildcard,
      maxAge: 600,
    });
    app.use("/sql", policy);
    app.use("/v1/*", policy);
  }

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const checks = await deps.readiness();
    // "ok (…)" is degraded but serving (e.g. stale secrets).
    const ready = Object.values(checks).every((v) => v === "ok" || v.startsWith("ok ("));
    const status = ready ? "ready" : "not ready";
    // The checks name secrets, roles and AWS's error text: only for this machine and trusted proxies.
    return c.json(seesDetails(deps.peer(c), (name) => c.req.header(name), deps.trustedProxies) ? { status, checks } : { status }, ready ? 200 : 503);
  });

  const core = gatewayCore(deps);
  const connect = (caller: Caller) => core.connect(caller);

  /** A 200 whose body is JSON text built already (see result-json.ts), measured against the response limit. */
  const json = (c: Context, text: string) => c.body(responseWithinLimits(text, deps.responseLimits), 200, { "content-type": "application/json" });

  const peerOf = (c: Context) => forwardedPeer(deps.peer(c), (name) => c.req.header(name), deps.trustedProxies, deps.forwardedCertificate);

  async function readRequest(c: Context): Promise<QueryRequest> {
    const text = await readBodyText(c.req, deps.maxBodyBytes);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw gatewayError(SQLSTATE.invalidTextRepresentation, "invalid JSON in request body");
    }
    return parseQueryRequest(raw);
  }

  /** Run the statement or batch on the caller's pool; each framing formats a result its own way. */
  async function answer<M extends ResultMode>(c: Context, request: QueryRequest, withPool: Lease, mode: M, format: (r: ResultOf<M>) => string): Promise<Response> {
    const limits = deps.responseLimits;
    // Asked for only once a statement has run a while (see run.ts): the caller's disconnect, or
    // the gateway's deadline for the request, whichever comes first.
    const until = Date.now() + (deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    const stop = () => AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(Math.max(0, until - Date.now()))]);
    if (request.kind === "single") return json(c, format(await withPool((session) => runSingle(session, request.statement, mode, limits, stop))));
    const options = transactionOptions(c.req.header.bind(c.req));
    const results = await withPool((session) => runBatch(session, request.statements, options, mode, limits, stop));
    return json(c, resultsJson(results.map(format)));
  }

  // Neon's client opens its WebSocket at host + "/v2" (its wsProxy default), with or without ?address=.
  const sessions = deps.sessions?.(core, peerOf);
  app.get("/v2", async (c, next) => {
    if (sessions && c.req.header("upgrade")?.toLowerCase() === "websocket") return sessions(c, next);
    throw gatewayError(SQLSTATE.featureNotSupported, sessions ? "a session needs a WebSocket upgrade" : "interactive sessions are not available here", {
      hint: sessions
        ? "Open a WebSocket (Neon's Pool or Client) and speak PostgreSQL's protocol on it."
        : "WebSocket sessions need the Node server (hbagate start); AWS Lambda function URLs cannot upgrade a request. Use /v1 or /sql here.",
    });
  });

  app.post("/v1/:database/sql", async (c) => {
    requireContentType(c.req.header("content-type"), V1_BODY);
    const caller = identifyCaller(peerOf(c), c.req.param("database"), c.req.header("authorization"), deps.caller);
    const request = await readRequest(c);
    return answer(c, request, await connect(caller), "json", resultJson);
  });

  // Neon's SQL-over-HTTP endpoint, answered as Neon does so its clients work unmodified.
  app.post("/sql", async (c) => {
    try {
      requireContentType(c.req.header("content-type"), NEON_BODY);
      const target = parseNeonConnectionString(c.req.header("neon-connection-string"));
      // Neon's authToken rides in Authorization: Bearer beside the connection string.
      const token = decodeBearer(c.req.header("authorization"));
      if (token !== undefined && target.password !== undefined) {
        // Which one the line should weigh would be a guess: neither is used.
        throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "a password and a bearer token together are refused", {
          hint: "Send the connection string without a password when you send an authToken.",
        });
      }
      const credentials: Credential[] = [
        ...(target.password === undefined ? [] : [{ kind: "password", password: target.password } as const]),
        ...(token === undefined ? [] : [{ kind: "bearer", token } as const]),
      ];
      const caller = callerFor(peerOf(c), target.database, target.user, credentials, startupParameters(target.parameters));
      const request = await readRequest(c);
      return await answer(c, request, await connect(caller), "text", neonResultJson);
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      return c.json(neonError(err), neonStatus(err.code) as 400);
    }
  });

  return app;
}

/** Headers a proxy adds for the client it relays (de facto and RFC 7239). */
const RELAY_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip", "x-client-ip", "true-client-ip", "cf-connecting-ip", "x-cluster-client-ip"] as const;

/**
 * Whether /readyz may show its checks (secret names, AWS's error text): to this
 * machine's loopback when it relays no one (no X-Forwarded-For, Forwarded,
 * X-Real-IP, …), and through a
 * trusted proxy only when the client the proxy forwards for is itself loopback
 * or trusted (the load balancer's own health check), never a public caller
 * behind it.
 */
function seesDetails(peer: PeerInfo, header: (name: string) => string | undefined, trusted: TrustedProxies): boolean {
  if (peer.transport !== "host" || peer.address === undefined) return false;
  const direct = clientAddress(peer.address);
  if (!direct) return false;
  // A local reverse proxy relaying someone says so in one of these (or should): then it is not this machine asking.
  if (!trusted.contains(direct)) return isLoopback(direct) && RELAY_HEADERS.every((name) => header(name) === undefined);
  let client: PeerInfo;
  try {
    client = forwardedPeer(peer, header, trusted);
  } catch {
    return false;
  }
  const a = client.address === undefined ? undefined : clientAddress(client.address);
  return a !== undefined && (isLoopback(a) || trusted.contains(a));
}
