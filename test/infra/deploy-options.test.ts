// infra/options.ts: the deploy-time choices of the SST app (docs/aws.md, "Deploying
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

test("deploy options: mutual TLS needs its domain, ACM certificate and S3 truststore, and brings the API Gateway", () => {
  const base = { HBAGATE_DEPLOY_UPSTREAM_HOST: "db" };
  const mtls = {
    HBAGATE_DEPLOY_MTLS_DOMAIN: "db.example.com",
    HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN: "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
    HBAGATE_DEPLOY_MTLS_TRUSTSTORE: "s3://example-truststores/hbagate/clients.pem",
  };
  const o = deployOptions("prod", { ...base, ...mtls, HBAGATE_DEPLOY_MTLS_TRUSTSTORE_VERSION: "v3" });
  assert.equal(o.apiGateway, true);
  assert.deepEqual(o.mutualTls, { domain: "db.example.com", certificateArn: mtls.HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN, truststoreUri: mtls.HBAGATE_DEPLOY_MTLS_TRUSTSTORE, truststoreVersion: "v3" });
  assert.equal(deployOptions("prod", base).mutualTls, undefined);
  assert.throws(() => deployOptions("prod", { ...base, HBAGATE_DEPLOY_MTLS_TRUSTSTORE: mtls.HBAGATE_DEPLOY_MTLS_TRUSTSTORE }), /HBAGATE_DEPLOY_MTLS_DOMAIN="": expected the custom domain[\s\S]*HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN="": expected the ACM certificate ARN/);
  assert.throws(() => deployOptions("prod", { ...base, ...mtls, HBAGATE_DEPLOY_MTLS_TRUSTSTORE: "https://bucket/clients.pem" }), /HBAGATE_DEPLOY_MTLS_TRUSTSTORE="https:\/\/bucket\/clients.pem": expected s3:\/\/bucket\/key/);
});
