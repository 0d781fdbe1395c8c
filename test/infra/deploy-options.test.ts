// infra/options.ts: the deploy-time choices of the SST app (README, "Deploying
// to AWS (SST)"), validated once with messages that name the variable.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deployOptions } from "../../infra/options.ts";

test("deploy options: the upstream is required outside the demo stage, and values are checked", () => {
  assert.throws(() => deployOptions("prod", {}), /HBAGATE_DEPLOY_UPSTREAM_HOST is required/);
  assert.throws(() => deployOptions("prod", { HBAGATE_DEPLOY_UPSTREAM_HOST: "db", HBAGATE_DEPLOY_UPSTREAM_PORT: "0" }), /HBAGATE_DEPLOY_UPSTREAM_PORT="0"/);
  assert.throws(() => deployOptions("prod", { HBAGATE_DEPLOY_UPSTREAM_HOST: "db", HBAGATE_DEPLOY_UPSTREAM_SSL: "prefer" }), /HBAGATE_DEPLOY_UPSTREAM_SSL="prefer"/);
  assert.throws(() => deployOptions("demo", { HBAGATE_DEPLOY_API_GATEWAY: "yes" }), /HBAGATE_DEPLOY_API_GATEWAY="yes": expected true or false/);
  assert.deepEqual(deployOptions("prod", { HBAGATE_DEPLOY_UPSTREAM_HOST: "db" }), {
    upstream: { kind: "external", host: "db", port: "5432", ssl: "verify-full" },
    verifier: false,
    apiGateway: false,
  });
  assert.deepEqual(deployOptions("demo", { HBAGATE_DEPLOY_UPSTREAM_HOST: "ignored" }).upstream, { kind: "demo" });
  assert.equal(deployOptions("demo", { HBAGATE_DEPLOY_SERVICE_USER: "hbagate" }).serviceUser, "hbagate");
  assert.throws(() => deployOptions("demo", { HBAGATE_DEPLOY_SERVICE_USER: "has space" }), /HBAGATE_DEPLOY_SERVICE_USER="has space"/);
  // Unverified TLS only when asked for by name.
  assert.equal((deployOptions("prod", { HBAGATE_DEPLOY_UPSTREAM_HOST: "db", HBAGATE_DEPLOY_UPSTREAM_SSL: "require" }).upstream as { ssl: string }).ssl, "require");
});
