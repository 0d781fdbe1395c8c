// The gateway assembled from settings: configuration (files or secrets),
// pools, caches and the HTTP app, with reload and shutdown. Runtime-neutral:
// whatever touches the runtime comes in as a port (platform.ts). Shared by
// the Node server (which adds listeners), the Lambda handler (which adds
// none) and any other entry point.
import { VerifiedCallers } from "../auth/verified-callers.ts";
import { FailureLimiter } from "../auth/failure-limiter.ts";
import type { Settings } from "../config/settings.ts";
import { createApp } from "../http/app.ts";
import type { LogEvent } from "../log.ts";
import type { Hono } from "hono";
import { RoleMembership } from "../upstream/role-membership.ts";
import { failureTable } from "../upstream/failure-table.ts";
import { embeddedCannotVerify, isPasswordRule, loadConfiguration, secretIdsOf, usesMembership, type Configuration } from "../config/configuration.ts";
import { isSecretReference } from "../secrets/reference.ts";
import { configuredRoleCredentials } from "../secrets/role-credentials.ts";
import { SecretStore } from "../secrets/secret-store.ts";
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { Platform } from "./platform.ts";
import { IssuerKeys } from "../auth/oauth/issuer-keys.ts";
import type { Context } from "hono";
import type { PeerInfo } from "../connection/caller.ts";
import type { GatewayCore } from "./connect.ts";
import { Sessions, type SessionLimits } from "../wire/session.ts";
import { matchHba, type ConnectionFacts, type MatchEnvironment } from "../hba/match.ts";
import { sessionHandler } from "../wire/websocket.ts";

/** The session limits from the settings table. */
export function sessionLimits(s: Settings): SessionLimits {
  const maxPerRole = s.HBAGATE_SESSIONS_MAX_PER_ROLE ?? Math.ceil(s.HBAGATE_SESSIONS_MAX / 2);
  return {
    maxSessions: s.HBAGATE_SESSIONS_MAX,
    maxPerRole,
    maxPerIdentity: s.HBAGATE_SESSIONS_MAX_PER_IDENTITY ?? Math.ceil(maxPerRole / 2),
    idleMs: s.HBAGATE_SESSION_IDLE_MS,
    lifetimeMs: s.HBAGATE_SESSION_LIFETIME_MS,
    maxMessageBytes: s.HBAGATE_SESSION_MAX_MESSAGE_BYTES,
    authTimeoutMs: s.HBAGATE_SESSION_AUTH_TIMEOUT_MS,
  };
}

export interface AssembledGateway {
  readonly app: Hono;
  /** Re-read the configuration files and secrets; false (and the old configuration kept) if anything is invalid. */
  reload(): Promise<boolean>;
  /** Ends every interactive session (57P01), so that a listener closing need not wait for them. */
  endSessions(): void;
  /** The interactive sessions, for a framing of the runtime's own (PostgreSQL's TCP port); undefined where there are none. */
  readonly sessions: Sessions | undefined;
  /**
   * What a request without credentials from this address would meet: the role it is made as
   * (HBAGATE_ANONYMOUS_USER; undefined: it is refused) and the method of the first line matching
   * it (null: none). Undefined with no configuration. For the start's banner (does the curl it
   * prints need -u?), never for a decision.
   */
  methodFor(facts: Omit<ConnectionFacts, "user" | "replication">): Promise<{ user: string | undefined; method: string | null } | undefined>;
  close(): Promise<void>;
}

export interface AssembleOptions {
  /** Rules to use when HBAGATE_HBA_FILE is unset; none means it must be set. */
  readonly defaultHba: string | undefined;
  /** Measure responses as they travel inside a JSON string (Lambda's payload), not as plain UTF-8. */
  readonly responsesAsJsonString?: boolean;
  /**
   * Start even when the configuration cannot be had (Lambda: a failed
   * initialisation is the platform's error, not the gateway's): requests are
   * 08001 until a later attempt loads it. The Node server stops instead.
   */
  readonly startUnconfigured?: boolean;
}

export async function assembleGateway(settings: Settings, log: (e: LogEvent) => void, platform: Platform, options: AssembleOptions): Promise<AssembledGateway | undefined> {
  const location = (value: string | undefined) => (value === undefined || isSecretReference(value) ? value : platform.files.absolute(value));
  const hba = location(settings.HBAGATE_HBA_FILE) ?? options.defaultHba;
  if (hba === undefined) {
    log({ level: "error", msg: "not starting: HBAGATE_HBA_FILE is not set" });
    return undefined;
  }
  if (!settings.HBAGATE_UPSTREAM_HOST && !platform.embeddedUpstream) {
    log({ level: "error", msg: "not starting: HBAGATE_UPSTREAM_HOST is not set" });
    return undefined;
  }
  const paths = {
    hba,
    ident: location(settings.HBAGATE_IDENT_FILE),
    verifier: location(settings.HBAGATE_VERIFIER_FILE),
    roleCredentials: location(settings.HBAGATE_ROLE_CREDENTIALS_FILE),
  };

  const store = platform.secrets
    ? new SecretStore(platform.secrets, {
        ttlMs: settings.HBAGATE_SECRETS_TTL_MS,
        refreshAheadMs: Math.floor(settings.HBAGATE_SECRETS_TTL_MS / 10),
        // Retries back off from 1 s to a minute, but never slower than the TTL itself.
        backoffMinMs: Math.min(1000, Math.floor(settings.HBAGATE_SECRETS_TTL_MS / 4)),
        backoffMaxMs: Math.min(60_000, settings.HBAGATE_SECRETS_TTL_MS),
      })
    : undefined;
  const readSecret = store ? (id: string) => store.get(id) : undefined;
  const configSecrets = secretIdsOf(paths);

  const embedded = !settings.HBAGATE_UPSTREAM_HOST;
  /**
   * The configuration, with what only this deployment can tell (the embedded
   * upstream checks no passwords). Each secret is asked for once per attempt,
   * all at once: an attempt takes one call's time (HBAGATE_SECRETS_TIMEOUT_MS)
   * at most, however many settings name a secret and whether or not it answers.
   */
  const load = async (): Promise<Configuration | undefined> => {
    const reads = new Map<string, Promise<string>>();
    const readOnce = store
      ? (id: string) => {
          let read = reads.get(id);
          if (!read) {
            read = store.get(id);
            read.catch(() => {}); // reported by the setting that reads it
            reads.set(id, read);
          }
          return read;
        }
      : undefined;
    for (const id of configSecrets) void readOnce?.(id);
    const loaded = await loadConfiguration(paths, platform.files, readOnce, log);
    const problem = loaded && embedded ? embeddedCannotVerify(loaded.rules, loaded.verifierFile !== undefined) : undefined;
    if (problem === undefined) return loaded;
    log({ level: "error", msg: "invalid configuration", error: problem });
    return undefined;
  };

  let config: Configuration | undefined = await load();
  if (!config && !options.startUnconfigured) {
    log({ level: "error", msg: "not starting: the configuration is invalid", file: paths.hba });
    store?.close();
    return undefined;
  }
  if (!config) log({ level: "error", msg: "no configuration yet: requests are refused (08001) until it can be loaded", file: paths.hba });

  let upstream = { host: settings.HBAGATE_UPSTREAM_HOST ?? "", port: settings.HBAGATE_UPSTREAM_PORT, close: async () => {} };
  let anonymousUser = settings.HBAGATE_ANONYMOUS_USER;
  if (embedded) {
    upstream = await platform.embeddedUpstream!();
    anonymousUser ??= "postgres";
    log({ level: "info", msg: "using the embedded PGlite upstream (in memory: its data is gone when the gateway stops)", upstream: upstream.host });
  }

  const ssl = settings.HBAGATE_UPSTREAM_SSL;
  const roleCredentials = configuredRoleCredentials(() => config?.roleCredentials, store, log);
  const pools = platform.upstream({
    host: upstream.host,
    port: upstream.port,
    max: settings.HBAGATE_POOL_MAX,
    maxTotal: Math.max(settings.HBAGATE_POOL_MAX_TOTAL, settings.HBAGATE_POOL_MAX),
    ...(settings.HBAGATE_POOL_MAX_PER_ROLE !== undefined ? { maxPerRole: settings.HBAGATE_POOL_MAX_PER_ROLE } : {}),
    ...(settings.HBAGATE_POOL_MAX_PER_IDENTITY !== undefined ? { maxPerIdentity: settings.HBAGATE_POOL_MAX_PER_IDENTITY } : {}),
    loginReserve: settings.HBAGATE_LOGIN_RESERVE,
    queueTimeoutMs: settings.HBAGATE_QUEUE_TIMEOUT_MS,
    staleAfterMs: settings.HBAGATE_STALE_AFTER_MS,
    maxQueue: settings.HBAGATE_QUEUE_MAX,
    // Past what any response could come from: a value on the wire is at most twice its JSON (its
    // 4-byte length against `"x",`), a row's header 7 bytes against `[],` (8 per row allowed), and
    // 1 MiB for the rest (row descriptions, the reset's answers, notices). Only an answer the
    // response limits refuse anyway is cut, before the driver holds it whole.
    maxAnswerBytes: 2 * settings.HBAGATE_MAX_RESPONSE_BYTES + 8 * settings.HBAGATE_MAX_RESPONSE_ROWS + (1 << 20),
    idleTimeout: settings.HBAGATE_IDLE_TIMEOUT,
    connectTimeout: settings.HBAGATE_CONNECT_TIMEOUT,
    maxLifetime: settings.HBAGATE_MAX_LIFETIME,
    statementTimeout: settings.HBAGATE_STATEMENT_TIMEOUT_MS,
    preparedStatements: settings.HBAGATE_PREPARED_STATEMENTS,
    preparedStatementBytes: settings.HBAGATE_PREPARED_STATEMENT_BYTES,
    ssl:
      ssl === "disable"
        ? false
        : ssl === "require"
          ? "require"
          : // No CA file: Node's roots, and NODE_EXTRA_CA_CERTS (on Lambda, its bundle with the Amazon RDS roots).
            { ...(settings.HBAGATE_UPSTREAM_CA_FILE ? { ca: platform.files.readFile(platform.files.absolute(settings.HBAGATE_UPSTREAM_CA_FILE)) } : {}), rejectUnauthorized: true },
  }, roleCredentials);

  // Role membership needs a login of the gateway's own; without one, +group and
  // samerole match no one (fail closed), and the log says so. Its password is
  // HBAGATE_SERVICE_PASSWORD, or the service user's entry in the role credentials
  // (a secret when deployed).
  const serviceUser = settings.HBAGATE_SERVICE_USER ?? (settings.HBAGATE_UPSTREAM_HOST ? undefined : "postgres");
  const servicePassword = async (): Promise<string> =>
    settings.HBAGATE_SERVICE_PASSWORD ?? (serviceUser === undefined ? undefined : await roleCredentials.password(serviceUser)) ?? "";
  const membership = serviceUser
    ? new RoleMembership(pools.serviceQuery(settings.HBAGATE_SERVICE_DATABASE, serviceUser, servicePassword), { ttlMs: settings.HBAGATE_ROLES_TTL_MS })
    : undefined;
  const environment: MatchEnvironment = { isMember: (u, r) => membership?.isMember(u, r) ?? false, ...platform.host };
  const warnMembership = (c: Configuration) => {
    if (!membership && c.rules.some(usesMembership)) {
      log({ level: "warn", msg: "rules use +group or samerole but HBAGATE_SERVICE_USER is not set: those entries match no one" });
    }
    // Without an audience, a token the same issuer minted for any other application passes.
    if (settings.HBAGATE_OAUTH_AUDIENCE === undefined && c.rules.some((r) => r.method.name === "oauth")) {
      log({ level: "warn", msg: "oauth lines are in force but HBAGATE_OAUTH_AUDIENCE is not set: tokens the issuer minted for any audience are accepted" });
    }
  };
  if (config) warnMembership(config);

  // Does the upstream check passwords from the gateway's address? A deliberately wrong one for
  // the service user tells. Asked at start and after each reload (never per readiness call), and
  // only where password lines are verified by upstream login.
  let passwordProbe: string | undefined;
  const probeUpstreamPasswords = async (rules: Configuration): Promise<void> => {
    passwordProbe = undefined;
    if (embedded || !serviceUser || rules.verifierFile || !rules.rules.some(isPasswordRule)) return;
    try {
      const outcome = await pools.login(settings.HBAGATE_SERVICE_DATABASE, serviceUser, `wrong-${[...crypto.getRandomValues(new Uint8Array(18))].map((b) => b.toString(16).padStart(2, "0")).join("")}`);
      if (!outcome.ok) return;
      passwordProbe = `ok (warning: the upstream let "${serviceUser}" in with a wrong password: password lines verified by upstream login refuse everyone; require scram-sha-256 upstream for the gateway's address, or set HBAGATE_VERIFIER_FILE)`;
      log({ level: "warn", msg: "the upstream accepted a wrong password for the service user: password lines will refuse everyone", user: serviceUser, exchange: outcome.exchange });
    } catch {
      // Unreachable now: /readyz's upstream check says so.
    }
  };
  if (config) void probeUpstreamPasswords(config);

  // Without a configuration, a request makes one attempt (one at a time, the
  // next no sooner than HBAGATE_CONFIG_RETRY_MS after the last ended) and waits for it;
  // until one succeeds, requests are refused as an unreachable server is.
  let attempt: Promise<void> | undefined;
  let lastAttemptEnded = Date.now();
  const configured = async (): Promise<void> => {
    if (config) return;
    attempt ??=
      Date.now() - lastAttemptEnded < settings.HBAGATE_CONFIG_RETRY_MS
        ? undefined
        : (async () => {
            try {
              const loaded = await load();
              if (loaded && !config) {
                config = loaded;
                log({ level: "info", msg: "configuration loaded", file: paths.hba, rules: loaded.rules.length });
                warnMembership(loaded);
                void probeUpstreamPasswords(loaded);
              }
            } finally {
              lastAttemptEnded = Date.now();
              attempt = undefined;
            }
          })();
    await attempt;
    if (!config) {
      throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "the gateway has no configuration yet", {
        hint: "Its configuration could not be loaded (see the gateway's log); try again later.",
      });
    }
  };

  // The brake's failures shared between instances, in the upstream itself.
  const sharedTable = settings.HBAGATE_AUTH_SHARED_TABLE;
  if (sharedTable && !serviceUser) {
    log({ level: "warn", msg: "HBAGATE_AUTH_SHARED_TABLE is set but HBAGATE_SERVICE_USER is not: failures are counted per instance only" });
  }
  const sharedFailures =
    sharedTable && serviceUser
      ? failureTable(pools.serviceQuery(settings.HBAGATE_SERVICE_DATABASE, serviceUser, servicePassword), {
          table: sharedTable,
          lockAfter: settings.HBAGATE_AUTH_LOCK_AFTER,
          windowMs: settings.HBAGATE_AUTH_WINDOW_SECONDS * 1000,
          lockMs: settings.HBAGATE_AUTH_LOCK_SECONDS * 1000,
          timeoutMs: settings.HBAGATE_AUTH_SHARED_TIMEOUT_MS,
          // A secret every instance has: a key of its own, or the service user's password.
          key: async () => settings.HBAGATE_AUTH_SHARED_KEY ?? (await servicePassword()),
          log,
        })
      : undefined;

  const verifiedCallers = new VerifiedCallers({ ttlMs: settings.HBAGATE_VERIFIED_TTL_MS, maxEntries: settings.HBAGATE_VERIFIED_MAX, mac: platform.mac });
  let lastReloadError: string | undefined;

  const upstreamReachable = platform.reachable(upstream.host, upstream.port);
  let sessions: Sessions | undefined;
  const webSockets = platform.webSockets;
  const app = createApp({
    ...(webSockets && settings.HBAGATE_SESSIONS_MAX > 0
      ? {
          sessions: (core: GatewayCore, peerOf: (c: Context) => PeerInfo) => {
            sessions = new Sessions({
              core,
              open: (request) => pools.openSession(request),
              cancel: (key) => pools.cancelSession(key),
              limits: sessionLimits(settings),
              log,
            });
            return sessionHandler(webSockets, sessions, peerOf);
          },
        }
      : {}),
    rules: () => config!.rules,
    verifierFile: () => config!.verifierFile,
    ident: () => config!.ident,
    peer: platform.peer,
    trustedProxies: settings.HBAGATE_TRUSTED_PROXIES,
    forwardedCertificate: platform.clientCertificates.forwarded,
    clientCertificates: platform.clientCertificates.available,
    caller: { anonymousUser, bearerRole: { claim: settings.HBAGATE_OAUTH_ROLE_CLAIM, fallback: settings.HBAGATE_OAUTH_DEFAULT_ROLE } },
    pools,
    environment,
    maxBodyBytes: settings.HBAGATE_MAX_BODY_BYTES,
    requestTimeoutMs: settings.HBAGATE_REQUEST_TIMEOUT_MS,
    responseLimits: { maxRows: settings.HBAGATE_MAX_RESPONSE_ROWS, maxBytes: settings.HBAGATE_MAX_RESPONSE_BYTES, asJsonString: options.responsesAsJsonString ?? false },
    ldap: {
      ...(readSecret ? { readSecret } : {}),
      authenticate: platform.ldap,
      connectTimeoutMs: settings.HBAGATE_LDAP_CONNECT_TIMEOUT_MS,
      operationTimeoutMs: settings.HBAGATE_LDAP_TIMEOUT_MS,
      caFile: settings.HBAGATE_LDAP_CA_FILE === undefined ? undefined : platform.files.absolute(settings.HBAGATE_LDAP_CA_FILE),
    },
    oauth: platform.httpsGet && {
      keys: new IssuerKeys(
        platform.httpsGet,
        { refreshMs: settings.HBAGATE_OAUTH_KEYS_REFRESH_MS, maxStaleMs: settings.HBAGATE_OAUTH_KEYS_MAX_STALE_MS, cooldownMs: settings.HBAGATE_OAUTH_KEYS_COOLDOWN_MS },
        log,
      ),
      audience: settings.HBAGATE_OAUTH_AUDIENCE,
      algorithms: settings.HBAGATE_OAUTH_ALGORITHMS,
      leewaySeconds: settings.HBAGATE_OAUTH_LEEWAY_SECONDS,
      identityClaim: settings.HBAGATE_OAUTH_IDENTITY_CLAIM,
      roleClaim: settings.HBAGATE_OAUTH_ROLE_CLAIM,
    },
    verifiedCallers,
    configured,
    failureLimiter: new FailureLimiter({
      slowAfter: settings.HBAGATE_AUTH_SLOW_AFTER,
      lockAfter: settings.HBAGATE_AUTH_LOCK_AFTER,
      windowMs: settings.HBAGATE_AUTH_WINDOW_SECONDS * 1000,
      lockMs: settings.HBAGATE_AUTH_LOCK_SECONDS * 1000,
      delayStepMs: settings.HBAGATE_AUTH_DELAY_STEP_MS,
      maxDelayMs: settings.HBAGATE_AUTH_MAX_DELAY_MS,
      maxEntries: settings.HBAGATE_AUTH_MAX_TRACKED,
    }),
    ...(sharedFailures ? { sharedFailures } : {}),
    corsOrigins: settings.HBAGATE_CORS_ORIGINS,
    allowedHosts: settings.HBAGATE_ALLOWED_HOSTS,
    readiness: async () => ({
      config: config ? (lastReloadError ?? "ok") : "unavailable: not loaded yet (see the log)",
      upstream: await upstreamReachable(),
      ...(passwordProbe ? { passwords: passwordProbe } : {}),
      ...(store ? { secrets: store.status() } : {}),
    }),
    log,
  });

  let reloading: Promise<boolean> | undefined;
  const reload = (): Promise<boolean> =>
    (reloading ??= (async () => {
      try {
        // The CA and CRL are PostgreSQL's SSL settings: reloaded with the rules, kept on their own when bad.
        const trustError = platform.clientCertificates.reload();
        if (trustError !== undefined) {
          lastReloadError = "ok (warning: the last reload failed and was not applied; the previous configuration is in force — see the log)";
          log({ level: "error", msg: "client certificate CA or CRL has errors; keeping the previous ones", error: trustError });
        }
        const next = await load();
        if (!next) {
          // Still serving, on rules that were valid: ready (a load balancer draining every instance
          // over one typo would be the outage), with the reason for whoever reads the checks.
          lastReloadError = "ok (warning: the last reload failed and was not applied; the previous configuration is in force — see the log)";
          log({ level: "error", msg: "configuration has errors; keeping the previous one", file: paths.hba });
          return false;
        }
        // In-flight requests keep the configuration they started with; new ones see this one.
        config = next;
        if (trustError === undefined) lastReloadError = undefined;
        verifiedCallers.clear();
        membership?.clear();
        log({ level: "info", msg: "reloaded configuration", file: paths.hba, rules: next.rules.length });
        warnMembership(next);
        void probeUpstreamPasswords(next);
        return trustError === undefined;
      } finally {
        reloading = undefined;
      }
    })());

  // A new version of a configuration secret is a reload, like a changed file and SIGHUP.
  store?.onChange((id) => {
    if (configSecrets.has(id) && config) void reload();
  });

  return {
    app,
    reload,
    async methodFor(facts) {
      if (!config) return undefined;
      const user = anonymousUser;
      if (user === undefined) return { user, method: null };
      const { rule } = await matchHba(config.rules, { ...facts, user, replication: false }, environment);
      return { user, method: rule ? rule.method.name : null };
    },
    endSessions: () => sessions?.close(),
    get sessions() {
      return sessions;
    },
    async close() {
      sessions?.close();
      store?.close();
      await pools.close();
      await upstream.close();
    },
  };
}
