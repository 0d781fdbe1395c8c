// The Node server, assembled: settings in, listening gateway out, with reload
// and shutdown. functions/node.ts only wires process signals to this.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { VerifiedCallers } from "../auth/verified-callers.ts";
import { absolutePath } from "../config/file-source.ts";
import type { Settings } from "../config/settings.ts";
import { systemHost } from "../connection/system-host.ts";
import { createApp, type LogEvent } from "../http/app.ts";
import { Pools } from "../upstream/pools.ts";
import { RoleMembership } from "../upstream/role-membership.ts";
import { loadConfiguration, usesMembership, type Configuration } from "./configuration.ts";
import { nodePeer, startListeners } from "./listeners.ts";
import { reachable } from "./reachable.ts";

export interface RunningGateway {
  readonly urls: readonly string[];
  /** Re-read the configuration files; false (and the old configuration kept) if anything is invalid. */
  reload(): boolean;
  close(): Promise<void>;
}

const DEFAULT_HBA = fileURLToPath(new URL("../../config/pg_hba.conf", import.meta.url));

export async function startGateway(settings: Settings, log: (e: LogEvent) => void): Promise<RunningGateway | undefined> {
  const paths = {
    hba: absolutePath(settings.HBAGATE_HBA_FILE ?? DEFAULT_HBA),
    ident: settings.HBAGATE_IDENT_FILE === undefined ? undefined : absolutePath(settings.HBAGATE_IDENT_FILE),
    verifier: settings.HBAGATE_VERIFIER_FILE === undefined ? undefined : absolutePath(settings.HBAGATE_VERIFIER_FILE),
    roleCredentials: settings.HBAGATE_ROLE_CREDENTIALS_FILE === undefined ? undefined : absolutePath(settings.HBAGATE_ROLE_CREDENTIALS_FILE),
  };
  let config: Configuration | undefined = loadConfiguration(paths, log);
  if (!config) {
    log({ level: "error", msg: "not starting: the configuration is invalid", file: paths.hba });
    return undefined;
  }

  let upstream = { host: settings.HBAGATE_UPSTREAM_HOST ?? "", port: settings.HBAGATE_UPSTREAM_PORT, close: async () => {} };
  let anonymousUser = settings.HBAGATE_ANONYMOUS_USER;
  if (!settings.HBAGATE_UPSTREAM_HOST) {
    const { startEmbeddedUpstream } = await import("../upstream/embedded.ts");
    upstream = await startEmbeddedUpstream();
    anonymousUser ??= "postgres";
    log({ level: "info", msg: "using the embedded PGlite upstream", upstream: `${upstream.host}:${upstream.port}` });
  }

  const ssl = settings.HBAGATE_UPSTREAM_SSL;
  const pools = new Pools({
    host: upstream.host,
    port: upstream.port,
    max: settings.HBAGATE_POOL_MAX,
    maxTotal: Math.max(settings.HBAGATE_POOL_MAX_TOTAL, settings.HBAGATE_POOL_MAX),
    idleTimeout: settings.HBAGATE_IDLE_TIMEOUT,
    connectTimeout: settings.HBAGATE_CONNECT_TIMEOUT,
    maxLifetime: settings.HBAGATE_MAX_LIFETIME,
    statementTimeout: settings.HBAGATE_STATEMENT_TIMEOUT_MS,
    ssl:
      ssl === "disable"
        ? false
        : ssl === "require"
          ? "require"
          : { ca: settings.HBAGATE_UPSTREAM_CA_FILE ? readFileSync(settings.HBAGATE_UPSTREAM_CA_FILE, "utf8") : "", rejectUnauthorized: true },
  }, (role) => config?.roleCredentials.get(role));

  // Role membership needs a login of the gateway's own; without one, +group and
  // samerole match no one (fail closed), and the log says so.
  const serviceUser = settings.HBAGATE_SERVICE_USER ?? (settings.HBAGATE_UPSTREAM_HOST ? undefined : "postgres");
  const servicePassword = settings.HBAGATE_SERVICE_PASSWORD ?? "";
  const membership = serviceUser
    ? new RoleMembership(pools.service(settings.HBAGATE_SERVICE_DATABASE, serviceUser, () => servicePassword), { ttlMs: settings.HBAGATE_ROLES_TTL_MS })
    : undefined;
  if (!membership && config.rules.some(usesMembership)) {
    log({ level: "warn", msg: "rules use +group or samerole but HBAGATE_SERVICE_USER is not set: those entries match no one" });
  }

  const verifiedCallers = new VerifiedCallers({ ttlMs: settings.HBAGATE_VERIFIED_TTL_MS, maxEntries: settings.HBAGATE_VERIFIED_MAX });
  let lastReloadError: string | undefined;

  const app = createApp({
    rules: () => config!.rules,
    verifierFile: () => config!.verifierFile,
    peer: nodePeer,
    trustedProxies: settings.HBAGATE_TRUSTED_PROXIES,
    caller: { anonymousUser },
    pools,
    environment: { isMember: (u, r) => membership?.isMember(u, r) ?? false, ...systemHost },
    maxBodyBytes: settings.HBAGATE_MAX_BODY_BYTES,
    responseLimits: { maxRows: settings.HBAGATE_MAX_RESPONSE_ROWS, maxBytes: settings.HBAGATE_MAX_RESPONSE_BYTES },
    ldap: {
      connectTimeoutMs: settings.HBAGATE_LDAP_CONNECT_TIMEOUT_MS,
      operationTimeoutMs: settings.HBAGATE_LDAP_TIMEOUT_MS,
      caFile: settings.HBAGATE_LDAP_CA_FILE === undefined ? undefined : absolutePath(settings.HBAGATE_LDAP_CA_FILE),
    },
    verifiedCallers,
    corsOrigins: settings.HBAGATE_CORS_ORIGINS,
    readiness: async () => ({ config: lastReloadError ?? "ok", upstream: await reachable(upstream.host, upstream.port) }),
    log,
  });

  const listening = await startListeners(app.fetch, {
    host: settings.HBAGATE_LISTEN_HOST,
    port: settings.HBAGATE_PORT,
    unixSocket: settings.HBAGATE_UNIX_SOCKET,
    tls: settings.HBAGATE_TLS_CERT_FILE && settings.HBAGATE_TLS_KEY_FILE ? { certFile: settings.HBAGATE_TLS_CERT_FILE, keyFile: settings.HBAGATE_TLS_KEY_FILE } : undefined,
  });

  return {
    urls: listening.urls,
    reload() {
      const next = loadConfiguration(paths, log);
      if (!next) {
        lastReloadError = "the last reload failed; the previous configuration is in force";
        log({ level: "error", msg: "configuration has errors; keeping the previous one", file: paths.hba });
        return false;
      }
      // In-flight requests keep the configuration they started with; new ones see this one.
      config = next;
      lastReloadError = undefined;
      verifiedCallers.clear();
      membership?.clear();
      log({ level: "info", msg: "reloaded configuration", file: paths.hba, rules: next.rules.length });
      return true;
    },
    async close() {
      await listening.close();
      await pools.close();
      await upstream.close();
    },
  };
}
