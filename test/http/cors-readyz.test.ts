// CORS for browser apps and the health endpoints, through app.request().
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { createApp } from "../../lib/http/app.ts";
import { testDeps, testPools } from "./deps.ts";

describe("CORS and health", () => {
  const pools = testPools(1);
  after(() => pools.close());
  const app = (overrides: Parameters<typeof testDeps>[2]) => createApp(testDeps(pools, "host all all all reject\n", overrides));
  const preflight = (a: ReturnType<typeof createApp>, path: string, origin: string) =>
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
    assert.equal((await app({}).request("/healthz")).status, 200);
    const down = await app({ readiness: async () => ({ config: "ok", upstream: "unreachable: ECONNREFUSED" }) }).request("/readyz");
    assert.equal(down.status, 503);
    assert.deepEqual(((await down.json()) as { checks: unknown }).checks, { config: "ok", upstream: "unreachable: ECONNREFUSED" });
    const up = await app({ readiness: async () => ({ config: "ok", upstream: "ok" }) }).request("/readyz");
    assert.equal(up.status, 200);
  });
});
