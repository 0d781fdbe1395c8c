// The HTTP surface: routes, body limits, JSON in and out, and the single place
// where a GatewayError becomes an HTTP status. Runtime-neutral (Request/Response).
import { Hono, type Context } from "hono";
import { cors } from "hono/cors";
import { authenticate } from "../auth/authenticate.ts";
import type { VerifiedCallers } from "../auth/verified-callers.ts";
import { lockedOut, type FailureLimiter } from "../auth/failure-limiter.ts";
import type { SharedFailures, SharedStanding } from "../auth/shared-failures.ts";
import { failureAddressFor, failureKeyFor, successClearsFailures } from "../auth/failure-key.ts";
import type { VerifierFile } from "../auth/verifier-file.ts";
import type { IdentFile } from "../ident/ident.ts";
import type { LdapSettings } from "../auth/ldap.ts";
import { noEntryMessage, refusalFor } from "../auth/messages.ts";
import { callerFor, identifyCaller, startupParameters, type Caller, type CallerSettings, type PeerInfo } from "../connection/caller.ts";
import { parseNeonConnectionString } from "../connection/neon-connection-string.ts";
import { forwardedHosts, forwardedPeer, type TrustedProxies } from "../connection/forwarded.ts";
import { clientAddress, isLoopback } from "../connection/client-address.ts";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { matchHba, type MatchEnvironment } from "../hba/match.ts";
import type { HbaRule } from "../hba/rule.ts";
import {
  parseQueryRequest,
  responseWithinLimits,
  runBatch,
  runSingle,
  type QueryRequest,
  type ResponseLimits,
  type ResultMode,
  type ResultOf,
  type TransactionOptions,
} from "../query/run.ts";
import { neonError, neonResultJson, neonStatus } from "./neon-format.ts";
import { resultJson, resultsJson } from "./result-json.ts";
import type { Pools, Session } from "../upstream/pools.ts";
import { httpStatus } from "./status.ts";
import { readBodyText } from "./read-body.ts";
import { browserGuard, requireContentType, type AllowedHosts } from "./browser-guard.ts";

import type { LogEvent } from "../log.ts";

export interface GatewayDeps {
  /** The rules in force; a reload swaps what this returns, never a half-valid set. */
  rules(): readonly HbaRule[];
  /** The connection as the runtime saw it (socket peer, TLS). */
  peer(c: Context): PeerInfo;
  /** Proxies whose X-Forwarded-For/-Proto are believed. */
  readonly trustedProxies: TrustedProxies;
  readonly caller: CallerSettings;
  readonly pools: Pick<Pools, "use" | "login">;
  readonly environment: MatchEnvironment;
  readonly maxBodyBytes: number;
  readonly responseLimits: ResponseLimits;
  readonly ldap: LdapSettings;
  /** The verifier file in force, if passwords are checked against one. */
  verifierFile(): VerifierFile | undefined;
  /** The pg_ident.conf maps in force, if any. */
  ident(): IdentFile | undefined;
  readonly verifiedCallers: VerifiedCallers;
  readonly failureLimiter: FailureLimiter;
  /** The brake's failures as every instance counted them, where a shared store is configured. */
  readonly sharedFailures?: SharedFailures;
  /** Resolves once the configuration is in force; throws (08001) while it cannot be had. Absent: always in force. */
  configured?(): Promise<void>;
  /** Browser origins allowed to call; empty: none (and no CORS headers); ["*"]: any origin, never with credentials. */
  readonly corsOrigins: readonly string[];
  /** Host names requests may be for, besides IP addresses and localhost names (DNS rebinding finds nothing). */
  readonly allowedHosts: AllowedHosts;
  /** The gateway's own bound on a request's statements, whatever the session's statement_timeout (default 60 s). */
  readonly requestTimeoutMs?: number;
  /** What /readyz reports: each check's state, ready only when all are "ok". */
  readiness(): Promise<Readonly<Record<string, string>>>;
  log(event: LogEvent): void;
}

const ISOLATION: Readonly<Record<string, TransactionOptions["isolation"]>> = {
  ReadUncommitted: "read uncommitted",
  ReadCommitted: "read committed",
  RepeatableRead: "repeatable read",
  Serializable: "serializable",
};

/** Neon's batch headers, honoured on both endpoints. */
function transactionOptions(header: (name: string) => string | undefined): TransactionOptions {
  const level = header("neon-batch-isolation-level");
  const isolation = level === undefined ? undefined : ISOLATION[level];
  if (level !== undefined && !isolation) {
    throw gatewayError(SQLSTATE.invalidParameterValue, `invalid Neon-Batch-Isolation-Level: "${level}"`, {
      hint: `Use one of ${Object.keys(ISOLATION).join(", ")}.`,
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

/** Runs a function on the caller's pool (a lease held throughout). */
type WithPool = <T>(fn: (session: Session) => Promise<T>) => Promise<T>;

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

  app.notFound((c) => c.json(errorBody(gatewayError("42704", `no such endpoint: ${c.req.method} ${new URL(c.req.url).pathname}`)), 404));

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
    return c.json(seesDetails(deps.peer(c), deps.trustedProxies) ? { status, checks } : { status }, ready ? 200 : 503);
  });

  // Made once, not per request: under tsx every named closure costs a defineProperty (keepNames).
  const upstreamLogin = (d: string, u: string, p: string) => deps.pools.login(d, u, p);
  // Reasons logged once per role: a bounded set, forgotten whole when full.
  const logged = new Set<string>();
  const logOnce = (key: string, event: LogEvent) => {
    if (logged.has(key)) return;
    if (logged.size >= 10_000) logged.clear();
    logged.add(key);
    deps.log(event);
  };

  /** request -> identity -> rule -> verification -> pool: the same for every framing. */
  async function connect(caller: Caller): Promise<WithPool> {
    await deps.configured?.();
    // One snapshot per request: a reload meanwhile does not mix two configurations.
    const rules = deps.rules();
    const verifierFile = deps.verifierFile();
    const ident = deps.ident();
    const { rule } = await matchHba(rules, caller.facts, deps.environment);
    if (!rule) throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, noEntryMessage(caller.facts));
    // Who is asking, for the brute-force brake: the client address (an IPv6 /64, or the socket)
    // and the identity the rule's verifier will compare (under LDAP "TEST1" is test1).
    const who = failureAddressFor(caller.facts);
    const identity = failureKeyFor(rule, caller.facts.user);
    // Refused here when locked; otherwise a turn, so parallel guesses cannot overtake the count.
    const release = await deps.failureLimiter.admit(who, identity, caller.facts.user);
    // The verifier may name the identity more exactly on the way (LDAP: the DN it is about to bind).
    const identities = [identity];
    const identified = (key: string) => {
      const locked = deps.failureLimiter.check(who, key, caller.facts.user);
      if (locked) throw locked;
      identities.push(key);
    };
    // Across instances: asked only when a verification is about to run (a cached success pays nothing).
    const shared = deps.sharedFailures;
    let standing: SharedStanding | undefined;
    const beforeVerify = shared
      ? async () => {
          standing = await shared.standing(who, identity);
          if (standing && standing.lockedMs > 0) throw lockedOut(caller.facts.user, standing.lockedMs);
        }
      : undefined;
    try {
      await authenticate(rule, caller, {
        upstreamLogin,
        logOnce,
        verifierFile,
        ident,
        roles: deps.environment,
        cache: deps.verifiedCallers,
        ldap: deps.ldap,
        log: deps.log,
        identified,
        ...(beforeVerify ? { beforeVerify } : {}),
      });
      if (successClearsFailures(rule)) {
        for (const key of identities) deps.failureLimiter.succeeded(who, key);
        if (shared && standing && standing.failures > 0) await shared.succeeded(who, identity);
      }
    } catch (err) {
      if (err instanceof GatewayError && err.code.startsWith("28") && rule.method.name !== "reject") {
        // The server log names the line, as PostgreSQL's does; the caller never sees it.
        deps.log({ level: "info", msg: "authentication failed", code: err.code, user: caller.facts.user, database: caller.facts.database, file: rule.file, line: rule.line });
        await Promise.all([...identities.map((key) => deps.failureLimiter.failed(who, key)), shared?.failed(who, identity)]);
      }
      throw err;
    } finally {
      release();
    }
    const { database, user } = caller.facts;
    return async (fn) => {
      try {
        // A principal the platform named (peer, mapped to the role) is bounded on its own.
        return await deps.pools.use(database, user, caller.password, caller.startup, fn, rule.method.name === "peer" ? caller.systemUser : undefined);
      } catch (err) {
        throw loginRefusal(rule, caller, err);
      }
    };
  }

  /**
   * The upstream refusing the request's own login (FATAL, class 28: no such
   * role there, its line for the gateway, a changed password) after the
   * caller's password was accepted would tell the caller the password was
   * right: it reads as that line's ordinary refusal instead, and the reason
   * goes to the log. (A statement cannot raise FATAL, so this is the login.)
   */
  function loginRefusal(rule: HbaRule, caller: Caller, err: unknown): unknown {
    if (!(err instanceof GatewayError) || !err.code.startsWith("28") || err.fields.severity !== "FATAL") return err;
    const { user, database } = caller.facts;
    const refusal = refusalFor(rule, user);
    if (!refusal) return err;
    deps.log({ level: "warn", msg: "the upstream refused the request's login after the caller was verified", user, database, code: err.code, reason: err.message, file: rule.file, line: rule.line });
    return refusal;
  }

  /** A 200 whose body is JSON text built already (see result-json.ts), measured against the response limit. */
  const json = (c: Context, text: string) => c.body(responseWithinLimits(text, deps.responseLimits), 200, { "content-type": "application/json" });

  const peerOf = (c: Context) => forwardedPeer(deps.peer(c), (name) => c.req.header(name), deps.trustedProxies);

  async function readRequest(c: Context): Promise<QueryRequest> {
    const text = await readBodyText(c.req, deps.maxBodyBytes);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw gatewayError("22P02", "invalid JSON in request body");
    }
    return parseQueryRequest(raw);
  }

  /** Run the statement or batch on the caller's pool; each framing formats a result its own way. */
  async function answer<M extends ResultMode>(c: Context, request: QueryRequest, withPool: WithPool, mode: M, format: (r: ResultOf<M>) => string): Promise<Response> {
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
      const caller = callerFor(peerOf(c), target.database, target.user, target.password, startupParameters(target.parameters));
      const request = await readRequest(c);
      return await answer(c, request, await connect(caller), "text", neonResultJson);
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      return c.json(neonError(err), neonStatus(err.code) as 400);
    }
  });

  return app;
}

/** Whether the direct peer (never a forwarded address) is this machine's loopback or a trusted proxy. */
function seesDetails(peer: PeerInfo, trusted: TrustedProxies): boolean {
  if (peer.transport !== "host" || peer.address === undefined) return false;
  const a = clientAddress(peer.address);
  if (!a) return false;
  return isLoopback(a) || trusted.contains(a);
}
