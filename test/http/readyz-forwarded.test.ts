// Found by a red team: /readyz shows its checks to a loopback peer that sends no
// X-Forwarded-For. A local reverse proxy that says who its client is with the
// standard Forwarded header (RFC 7239: HAProxy's `option forwarded`, Envoy,
// Traefik options) or X-Real-IP only (a common nginx recipe) and is not listed
// in HBAGATE_TRUSTED_PROXIES relays a public caller as loopback without
// X-Forwarded-For: the caller got the checks (secret names, AWS's errors). Any of the
// headers a proxy adds for its client now means someone else is asking.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";

describe("/readyz behind a local proxy that does not speak X-Forwarded-For", () => {
  const pools = testPools(1);
  after(() => pools.close());
  const app = testApp(pools, "host all all all reject", {
    peer: () => ({ transport: "host", address: "127.0.0.1", encrypted: false }),
    readiness: async () => ({ credentials: "ok (arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-db)" }),
  });
  for (const headers of [{ forwarded: "for=203.0.113.5;proto=https" }, { "x-real-ip": "203.0.113.5" }]) {
    test(`${Object.keys(headers)[0]}: a public client relayed by loopback gets the status alone`, async () => {
      const res = await app.request("http://localhost/readyz", { headers });
      const body = (await res.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ["status"], JSON.stringify(body));
    });
  }
});
