// CORS for browser apps and the health endpoints, through app.request().
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { testPools } from "./deps.ts";
import { parseTrustedProxies } from "../../lib/connection/forwarded.ts";
import { testApp } from "../harness/gateway.ts";

describe("CORS and health", () => {
  const pools = testPools(1);
  after(() => pools.close());
  const app = (overrides: Parameters<typeof testApp>[2]) => testApp(pools, "host all all all reject\n", overrides);
  const preflight = (a: ReturnType<typeof testApp>, path: string, origin: string) =>
    a.request(path, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, neon-connection-string" },
    });

  test("listed origins get their preflight answered, with credentials, on both endpoints", async () => {
    const a = app({ corsOrigins: ["https://app.example"] });
    for (const path of ["/sql", "/v1/postgres/sql"]) {
      const res = await preflight(a, path, "https://app.example");
      assert.equal(res.status, 204);
      assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example");
      assert.equal(res.headers.get("access-control-allow-credentials"), "true");
      assert.match(res.headers.get("access-control-allow-headers") ?? "", /authorization/);
      assert.match(res.headers.get("access-control-allow-methods") ?? "", /POST/);
    }
  });

  test("other origins get no allow-origin header", async () => {
    const res = await preflight(app({ corsOrigins: ["https://app.example"] }), "/sql", "https://evil.example");
    assert.equal(res.headers.get("access-control-allow-origin"), null);
  });

  test("a wildcard never comes with credentials", async () => {
    const res = await preflight(app({ corsOrigins: ["*"] }), "/sql", "https://any.example");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("access-control-allow-credentials"), null);
  });

  test("no origins configured: no CORS headers at all", async () => {
    const res = await app({}).request("/v1/postgres/sql", { method: "POST", headers: { origin: "https://app.example" }, body: "{}" });
    assert.equal(res.headers.get("access-control-allow-origin"), null);
  });

  test("/healthz is alive; /readyz is 503 naming the failing check, 200 when all are ok", async () => {
    const local = { peer: () => ({ transport: "host" as const, address: "127.0.0.1", encrypted: false }) };
    assert.equal((await app({}).request("/healthz")).status, 200);
    const down = await app({ ...local, readiness: async () => ({ config: "ok", upstream: "unreachable: ECONNREFUSED" }) }).request("/readyz");
    assert.equal(down.status, 503);
    assert.deepEqual(((await down.json()) as { checks: unknown }).checks, { config: "ok", upstream: "unreachable: ECONNREFUSED" });
    const up = await app({ ...local, readiness: async () => ({ config: "ok", upstream: "ok" }) }).request("/readyz");
    assert.equal(up.status, 200);
  });

  test("/readyz tells only this machine and trusted proxies why: anyone else gets the status alone", async () => {
    // What Secrets Manager's errors carry: the account, the role, the secret's name.
    const readiness = async () => ({ config: "ok", secrets: "unavailable: User: arn:aws:sts::123456789012:assumed-role/gw/x is not authorized on hbagate/rules" });
    const from = (address: string, extra: Parameters<typeof testApp>[2] = {}) =>
      app({ readiness, peer: () => ({ transport: "host" as const, address, encrypted: true }), ...extra });
    for (const address of ["203.0.113.9", "10.0.0.1", "::ffff:198.51.100.1"]) {
      const res = await from(address).request("/readyz", { headers: { "x-forwarded-for": "127.0.0.1" } });
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { status: "not ready" }, address);
    }
    for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.2"]) {
      const body = (await (await from(address).request("/readyz")).json()) as { checks?: Record<string, string> };
      assert.match(body.checks?.secrets ?? "", /not authorized/, address);
    }
    const proxied = await from("10.1.2.3", { trustedProxies: parseTrustedProxies("10.0.0.0/8") }).request("/readyz");
    assert.ok(((await proxied.json()) as { checks?: unknown }).checks, "a trusted proxy's own health check sees the checks");
    // Found by a red team: every public caller behind a trusted load balancer arrives from it.
    const behind = await from("10.1.2.3", { trustedProxies: parseTrustedProxies("10.0.0.0/8") }).request("/readyz", { headers: { "x-forwarded-for": "203.0.113.9" } });
    assert.deepEqual(await behind.json(), { status: "not ready" }, "a public client forwarded by the trusted proxy");
    const viaLocal = await from("127.0.0.1").request("/readyz", { headers: { "x-forwarded-for": "203.0.113.9" } });
    assert.deepEqual(await viaLocal.json(), { status: "not ready" }, "a local reverse proxy relaying a public client");
    const trustedClient = await from("10.1.2.3", { trustedProxies: parseTrustedProxies("10.0.0.0/8") }).request("/readyz", { headers: { "x-forwarded-for": "10.9.9.9" } });
    assert.ok(((await trustedClient.json()) as { checks?: unknown }).checks, "a trusted address forwarded by a trusted proxy");
  });
});
