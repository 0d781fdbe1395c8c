// Node server entry point: settings and files in, a listening gateway out.
import { serve } from "@hono/node-server";
import { getConnInfo } from "@hono/node-server/conninfo";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { absolutePath, fileSource } from "../lib/config/file-source.ts";
import { settingsFromEnv } from "../lib/config/settings.ts";
import { systemHost } from "../lib/connection/system-host.ts";
import { formatError, loadHba } from "../lib/hba/load.ts";
import type { HbaRule } from "../lib/hba/rule.ts";
import { createApp, type LogEvent } from "../lib/http/app.ts";
import { VerifiedCallers } from "../lib/auth/verified-callers.ts";
import { parseVerifierFile, type VerifierFile } from "../lib/auth/verifier-file.ts";
import { Pools } from "../lib/upstream/pools.ts";
import { RoleMembership } from "../lib/upstream/role-membership.ts";

const log = (event: LogEvent) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...event }) + "\n");

function loadVerifiers(path: string): VerifierFile | undefined {
  let file: VerifierFile;
  try {
    file = parseVerifierFile(path, fileSource.readFile(path));
  } catch (err) {
    log({ level: "error", msg: "cannot read the verifier file", file: path, error: (err as Error).message });
    return undefined;
  }
  for (const e of file.errors) log({ level: "error", msg: "invalid verifier file line", error: `${e.file}:${e.line}: ${e.message}` });
  return file.errors.length === 0 ? file : undefined;
}

/** Can a TCP connection to the upstream be opened (within 2 s)? */
function reachable(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    const done = (state: string) => {
      socket.destroy();
      resolve(state);
    };
    socket.once("connect", () => done("ok"));
    socket.once("timeout", () => done("unreachable: timed out"));
    socket.once("error", (err: NodeJS.ErrnoException) => done(`unreachable: ${err.code ?? err.message}`));
  });
}

function usesMembership(rule: HbaRule): boolean {
  return rule.users.some((u) => u.kind === "member") || rule.databases.some((d) => d.kind === "samerole");
}

function loadRules(path: string): readonly HbaRule[] | undefined {
  const file = loadHba(path, fileSource);
  if (file.errors.length === 0) return file.rules;
  for (const e of file.errors) log({ level: "error", msg: "invalid pg_hba.conf line", error: formatError(e) });
  return undefined;
}

export async function start(_args: readonly string[]): Promise<number> {
  let settings;
  try {
    settings = settingsFromEnv(process.env);
  } catch (err) {
    log({ level: "error", msg: "not starting", error: (err as Error).message });
    return 1;
  }
  const hbaPath = absolutePath(settings.HBAGATE_HBA_FILE ?? fileURLToPath(new URL("../config/pg_hba.conf", import.meta.url)));
  let rules = loadRules(hbaPath);
  if (!rules) {
    log({ level: "error", msg: "not starting: the hba file is invalid", file: hbaPath });
    return 1;
  }

  const verifierPath = settings.HBAGATE_VERIFIER_FILE === undefined ? undefined : absolutePath(settings.HBAGATE_VERIFIER_FILE);
  let verifiers = verifierPath === undefined ? undefined : loadVerifiers(verifierPath);
  if (verifierPath !== undefined && !verifiers) {
    log({ level: "error", msg: "not starting: the verifier file is invalid", file: verifierPath });
    return 1;
  }
  const verifiedCallers = new VerifiedCallers({ ttlMs: settings.HBAGATE_VERIFIED_TTL_MS, maxEntries: settings.HBAGATE_VERIFIED_MAX });

  let upstream = { host: settings.HBAGATE_UPSTREAM_HOST ?? "", port: settings.HBAGATE_UPSTREAM_PORT, close: async () => {} };
  let anonymousUser = settings.HBAGATE_ANONYMOUS_USER;
  if (!settings.HBAGATE_UPSTREAM_HOST) {
    const { startEmbeddedUpstream } = await import("../lib/upstream/embedded.ts");
    upstream = await startEmbeddedUpstream();
    anonymousUser ??= "postgres";
    log({ level: "info", msg: "using the embedded PGlite upstream", upstream: `${upstream.host}:${upstream.port}` });
  }

  const pools = new Pools({
    host: upstream.host,
    port: upstream.port,
    max: settings.HBAGATE_POOL_MAX,
    maxTotal: Math.max(settings.HBAGATE_POOL_MAX_TOTAL, settings.HBAGATE_POOL_MAX),
    idleTimeout: settings.HBAGATE_IDLE_TIMEOUT,
    connectTimeout: settings.HBAGATE_CONNECT_TIMEOUT,
    maxLifetime: settings.HBAGATE_MAX_LIFETIME,
    statementTimeout: settings.HBAGATE_STATEMENT_TIMEOUT_MS,
  });
  // Role membership needs a login of the gateway's own; without one, +group and
  // samerole match no one (fail closed), and the log says so.
  const serviceUser = settings.HBAGATE_SERVICE_USER ?? (settings.HBAGATE_UPSTREAM_HOST ? undefined : "postgres");
  const servicePassword = settings.HBAGATE_SERVICE_PASSWORD ?? "";
  const membership = serviceUser
    ? new RoleMembership(pools.service(settings.HBAGATE_SERVICE_DATABASE, serviceUser, () => servicePassword), { ttlMs: settings.HBAGATE_ROLES_TTL_MS })
    : undefined;
  if (!membership && rules.some(usesMembership)) {
    log({ level: "warn", msg: "rules use +group or samerole but HBAGATE_SERVICE_USER is not set: those entries match no one" });
  }

  const app = createApp({
    rules: () => rules!,
    peer: (c) => {
      const info = getConnInfo(c);
      return { transport: "host", ...(info.remote.address ? { address: info.remote.address } : {}), encrypted: false };
    },
    trustedProxies: settings.HBAGATE_TRUSTED_PROXIES,
    caller: { anonymousUser },
    pools,
    environment: { isMember: (u, r) => membership?.isMember(u, r) ?? false, ...systemHost },
    maxBodyBytes: settings.HBAGATE_MAX_BODY_BYTES,
    responseLimits: { maxRows: settings.HBAGATE_MAX_RESPONSE_ROWS, maxBytes: settings.HBAGATE_MAX_RESPONSE_BYTES },
    verifierFile: () => verifiers,
    verifiedCallers,
    corsOrigins: settings.HBAGATE_CORS_ORIGINS,
    readiness: async () => ({
      config: lastReloadError ?? "ok",
      upstream: await reachable(upstream.host, upstream.port),
    }),
    log,
  });

  let lastReloadError: string | undefined;
  // SIGHUP re-reads the rules and the verifier file; unless both are valid the
  // running ones stay, as PostgreSQL keeps its rules when a reload has errors.
  process.on("SIGHUP", () => {
    const next = loadRules(hbaPath);
    const nextVerifiers = verifierPath === undefined ? undefined : loadVerifiers(verifierPath);
    if (!next || (verifierPath !== undefined && !nextVerifiers)) {
      log({ level: "error", msg: "configuration has errors; keeping the previous one", file: hbaPath });
      lastReloadError = "the last reload failed; the previous configuration is in force";
      return;
    }
    lastReloadError = undefined;
    rules = next;
    verifiers = nextVerifiers;
    verifiedCallers.clear();
    membership?.clear();
    log({ level: "info", msg: "reloaded configuration", file: hbaPath, rules: next.length });
  });

  const server = serve({ fetch: app.fetch, hostname: settings.HBAGATE_LISTEN_HOST, port: settings.HBAGATE_PORT }, (info) => {
    const url = `http://${info.family === "IPv6" ? `[${info.address}]` : info.address}:${info.port}`;
    process.stdout.write(`hbagate listening on ${url}\n`);
    process.stdout.write(`try: curl -s ${url}/v1/postgres/sql -H 'content-type: application/json' -d '{"query":"select $1::int + 1 as answer","params":[41]}'\n`);
  });

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await pools.close();
  await upstream.close();
  return 0;
}
