// red19: /readyz details "only to loopback or HBAGATE_TRUSTED_PROXIES; others
// get plain ready/not ready". The check looks at the socket peer only: behind a
// trusted load balancer (or CloudFront in front of a function URL, whose edge
// addresses are then the trusted sourceIp) every public caller arrives from
// the proxy, and X-Forwarded-For names the real client, yet it is shown the
// secret names and AWS error text.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { createApp } from "../../lib/http/app.ts";
import { parseTrustedProxies } from "../../lib/connection/forwarded.ts";
import { testDeps, testPools } from "../http/deps.ts";

describe("red19: /readyz behind a trusted proxy", () => {
  const pools = testPools(1);
  after(() => pools.close());

  test("a public client forwarded by the trusted proxy gets the status alone", async () => {
    const readiness = async () => ({ config: "ok", secrets: "unavailable: User: arn:aws:sts::123456789012:assumed-role/gw/x is not authorized on hbagate/rules" });
    const app = createApp(
      testDeps(pools, "host all all all reject\n", {
        readiness,
        trustedProxies: parseTrustedProxies("10.0.0.0/8"),
        peer: () => ({ transport: "host" as const, address: "10.1.2.3", encrypted: true }),
      }),
    );
    const res = await app.request("/readyz", { headers: { "x-forwarded-for": "203.0.113.9" } });
    assert.deepEqual(await res.json(), { status: "not ready" });
  });
});
