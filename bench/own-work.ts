// The gateway's own work per request, in-process and without I/O: what it
// adds to a bridge's HTTP and driver work, step by step, in microseconds.
import { authenticateLdap } from "../lib/auth/ldap.ts";
import { authenticate, type Verifiers } from "../lib/auth/authenticate.ts";
import { VerifiedCallers } from "../lib/auth/verified-callers.ts";
import { identifyCaller } from "../lib/connection/caller.ts";
import { forwardedPeer, NO_TRUSTED_PROXIES } from "../lib/connection/forwarded.ts";
import { memorySource } from "../lib/config/source.ts";
import { loadHba } from "../lib/hba/load.ts";
import { matchHba } from "../lib/hba/match.ts";
import { resultJson } from "../lib/http/result-json.ts";
import { nodeMac } from "../lib/node/node-mac.ts";
import { parseQueryRequest } from "../lib/query/request.ts";
import { Pools } from "../lib/upstream/pools.ts";
import { microsPerCall } from "./per-call.ts";

export async function ownWork(): Promise<Record<string, number>> {
  const rules = loadHba("/bench", memorySource({ "/bench": "host all bench 127.0.0.1/32 trust\nhost all benchpw 127.0.0.1/32 scram-sha-256\n" })).rules;
  // Never connects: the function given to use() does not touch the pool.
  const pools = new Pools({ host: "127.0.0.1", port: 9, max: 10, maxTotal: 100, idleTimeout: 5, connectTimeout: 5, maxLifetime: 60, statementTimeout: 0 });
  const environment = { isMember: () => false };
  const socket = { transport: "host" as const, address: "127.0.0.1", encrypted: false };
  const cache = new VerifiedCallers({ ttlMs: 3_600_000, maxEntries: 100, mac: nodeMac() }); // as the Node gateway has it
  const verifiers: Verifiers = {
    cache,
    epoch: cache.epoch,
    ident: undefined,
    roles: environment,
    oauth: undefined,
    ldap: { connectTimeoutMs: 1000, authenticate: authenticateLdap, operationTimeoutMs: 1000, caFile: undefined },
    log: () => {},
    clientCertificates: false,
    upstreamLogin: async () => ({ ok: true, exchange: "scram-sha-256" }),
    logOnce: () => {},
    verifierFile: undefined,
  };
  const trust = identifyCaller(socket, "postgres", "Basic " + btoa("bench:"), { anonymousUser: undefined });
  const password = identifyCaller(socket, "postgres", "Basic " + btoa("benchpw:bench-pw"), { anonymousUser: undefined });
  const body = '{"query":"select $1::int as n","params":[1]}';
  const result = { command: "SELECT", rowCount: 1, fields: [{ name: "n", dataTypeID: 23 }], rows: [{ n: 1 }] };
  const out = {
    identity: await microsPerCall(() => identifyCaller(forwardedPeer(socket, () => undefined, NO_TRUSTED_PROXIES), "postgres", "Basic YmVuY2g6", { anonymousUser: undefined })),
    parse: await microsPerCall(() => parseQueryRequest(JSON.parse(body))),
    hba: await microsPerCall(() => matchHba(rules, trust.facts, environment)),
    verifyTrust: await microsPerCall(() => authenticate(rules[0]!, trust, verifiers)),
    verifyPasswordCached: await microsPerCall(() => authenticate(rules[1]!, password, verifiers)),
    pool: await microsPerCall(() => pools.use("postgres", "bench", undefined, {}, async () => 1)),
    response: await microsPerCall(() => resultJson(result)),
  };
  await pools.close();
  return out;
}
