// Gateway dependencies for tests: real pools, fixed rules, a recording log.
import { authenticateLdap } from "../../lib/auth/ldap.ts";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { memorySource } from "../../lib/config/source.ts";
import { NO_TRUSTED_PROXIES } from "../../lib/connection/forwarded.ts";
import { parseAllowedHosts } from "../../lib/http/browser-guard.ts";
import { loadHba } from "../../lib/hba/load.ts";
import type { Hono } from "hono";
import type { GatewayDeps } from "../../lib/http/app.ts";
import type { LogEvent } from "../../lib/log.ts";
import { Pools } from "../../lib/upstream/pools.ts";

export function testPools(port: number, overrides: Partial<ConstructorParameters<typeof Pools>[0]> = {}): Pools {
  return new Pools({ host: "127.0.0.1", port, max: 2, maxTotal: 20, idleTimeout: 5, connectTimeout: 5, maxLifetime: 60, statementTimeout: 2000, ...overrides });
}

export function rulesFrom(text: string) {
  const path = "/rules/pg_hba.conf";
  const file = loadHba(path, memorySource({ [path]: text }));
  if (file.errors.length > 0) throw new Error(`test rules are invalid: ${JSON.stringify(file.errors)}`);
  return file.rules;
}

export function testDeps(pools: Pools, rules: string, overrides: Partial<GatewayDeps> = {}): GatewayDeps & { logs: LogEvent[] } {
  const logs: LogEvent[] = [];
  const compiled = rulesFrom(rules);
  return {
    rules: () => compiled,
    peer: () => ({ transport: "host", address: "10.0.0.1", encrypted: false }),
    trustedProxies: NO_TRUSTED_PROXIES,
    caller: { anonymousUser: undefined },
    pools,
    environment: { isMember: () => false },
    maxBodyBytes: 4096,
    responseLimits: { maxRows: 100_000, maxBytes: 16 << 20 },
    ldap: { connectTimeoutMs: 2000, authenticate: authenticateLdap, operationTimeoutMs: 2000, caFile: undefined },
    verifierFile: () => undefined,
    ident: () => undefined,
    verifiedCallers: new VerifiedCallers({ ttlMs: 0, maxEntries: 10 }),
    failureLimiter: new FailureLimiter({ slowAfter: 1000, lockAfter: 1000, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 100 }),
    corsOrigins: [],
    allowedHosts: parseAllowedHosts(""),
    readiness: async () => ({ config: "ok" }),
    log: (e) => logs.push(e),
    logs,
    ...overrides,
  };
}

/** POST a JSON body to /v1/{database}/sql through app.request (no socket); the status and the parsed answer. */
export async function postSql(app: Hono, body: unknown, headers: Record<string, string> = {}, database = "postgres"): Promise<{ status: number; body: Record<string, any> }> {
  const res = await app.request(`/v1/${database}/sql`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}
