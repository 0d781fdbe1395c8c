// The SST app, offline: `sst install` when .sst/platform is missing, a
// type-check of sst.config.ts and infra/ against it, and the program run with
// SST's real components under Pulumi mocks (test/harness/sst-mocks.ts), whose
// resource graph is asserted. This validates the app's shape, not a
// deployment: nothing here reaches AWS.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, describe, test, type TestContext } from "node:test";
import { LAMBDA_MAX_RESPONSE_BYTES, LAMBDA_RESPONSE_PAYLOAD_BYTES, loadLambdaSettings } from "../../lib/config/settings.ts";
import { parseClientAddress } from "../../lib/hba/address.ts";
import { buildHandler } from "../lambda/events.ts";
import { prepareSstPlatform, runSstProgramUnderMocks, typecheckInfra, type MockResource, type MockRun, type PlatformState } from "../harness/sst-mocks.ts";

const INSTALL_MS = 5 * 60_000;
const RUN_MS = 3 * 60_000;

const BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
const VPC_ACCESS = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";

let platform: PlatformState = { ready: false, skip: "not prepared" };
let typecheck: Promise<{ code: number | null; output: string }>;
let external: Promise<MockRun>;
let demo: Promise<MockRun>;
let mutualTls: Promise<MockRun>;

const MTLS = {
  HBAGATE_DEPLOY_MTLS_DOMAIN: "db.example.com",
  HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN: "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
  HBAGATE_DEPLOY_MTLS_TRUSTSTORE: "s3://example-truststores/hbagate/clients.pem",
  HBAGATE_DEPLOY_MTLS_TRUSTSTORE_VERSION: "v3",
};

before(
  async () => {
    testedBundleSha256 = createHash("sha256").update(readFileSync(await buildHandler())).digest("hex");
    platform = await prepareSstPlatform(INSTALL_MS);
    if (!platform.ready) return;
    // Started together; each test awaits the one it needs.
    typecheck = typecheckInfra(RUN_MS);
    external = runSstProgramUnderMocks("ci", { HBAGATE_DEPLOY_UPSTREAM_HOST: "db.example.net", HBAGATE_DEPLOY_UPSTREAM_PORT: "6432" }, RUN_MS);
    demo = runSstProgramUnderMocks("demo", { HBAGATE_DEPLOY_API_GATEWAY: "true", HBAGATE_DEPLOY_VERIFIER: "true", HBAGATE_DEPLOY_SERVICE_USER: "hbagate" }, RUN_MS);
    mutualTls = runSstProgramUnderMocks("mtls", { HBAGATE_DEPLOY_UPSTREAM_HOST: "db.example.net", ...MTLS }, RUN_MS);
    for (const p of [typecheck, external, demo, mutualTls]) p.catch(() => {}); // reported by the tests that await them
  },
  { timeout: INSTALL_MS + 60_000 },
);

/** The run, or undefined after marking the test skipped (registry unreachable off CI). */
async function ready<T>(t: TestContext, value: () => Promise<T>): Promise<T | undefined> {
  if (!platform.ready) {
    t.skip(platform.skip);
    return undefined;
  }
  return value();
}

const custom = (run: MockRun) => run.resources.filter((r) => r.custom);
const ofType = (run: MockRun, type: string) => custom(run).filter((r) => r.type === type);
function one(run: MockRun, type: string, name?: string): MockResource {
  const found = ofType(run, type).filter((r) => name === undefined || r.name === name);
  assert.equal(found.length, 1, `expected one ${type}${name ? ` "${name}"` : ""}, found ${found.map((r) => r.name).join(", ") || "none"}`);
  return found[0]!;
}
const str = (v: unknown) => v as string;
const rec = (v: unknown) => v as Record<string, unknown>;

function secrets(run: MockRun) {
  return { rules: str(one(run, "aws:secretsmanager/secret:Secret", "GatewayRules").state.arn), credentials: str(one(run, "aws:secretsmanager/secret:Secret", "GatewayCredentials").state.arn) };
}
const fn = (run: MockRun) => one(run, "aws:lambda/function:Function", "GatewayFunction");
const env = (run: MockRun) => rec(rec(fn(run).inputs.environment).variables) as Record<string, string>;

/**
 * What the deployed function runs with, read by the gateway's own loader from
 * its environment: responses within Lambda's payload limit, each cold-start
 * attempt at the configuration well inside Lambda's 10 s initialisation, and
 * the upstream's certificate verified, the runtime's RDS roots trusted.
 */
function assertServerlessSettings(run: MockRun) {
  const e = env(run);
  const s = loadLambdaSettings(e);
  assert.equal(s.HBAGATE_MAX_RESPONSE_BYTES, LAMBDA_MAX_RESPONSE_BYTES);
  assert.ok(s.HBAGATE_MAX_RESPONSE_BYTES < LAMBDA_RESPONSE_PAYLOAD_BYTES);
  assert.ok(s.HBAGATE_SECRETS_TIMEOUT_MS <= 5000, `HBAGATE_SECRETS_TIMEOUT_MS ${s.HBAGATE_SECRETS_TIMEOUT_MS}`);
  assert.ok(s.HBAGATE_STATEMENT_TIMEOUT_MS < Number(fn(run).inputs.timeout) * 1000, "a statement is cancelled before the function is killed");
  assert.equal(s.HBAGATE_UPSTREAM_SSL, "verify-full");
  assert.equal(s.HBAGATE_UPSTREAM_CA_FILE, undefined);
  assert.equal(e.NODE_EXTRA_CA_CERTS, "/var/runtime/ca-cert.pem", "Lambda's Node runtime trusts the RDS roots only when told to");
  // Readiness: no address is trusted to see /readyz's checks (secret names, AWS's errors) but
  // the function's own loopback; a function URL's callers are the public internet.
  assert.equal(e.HBAGATE_TRUSTED_PROXIES, undefined);
  for (const a of ["0.0.0.0", "10.0.0.1", "172.16.0.1", "192.168.1.1", "::"]) {
    assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseClientAddress(a)!), false, a);
  }
}

interface Statement {
  Effect: string;
  Action?: string | string[];
  Resource?: string | string[];
  Principal?: Record<string, string | string[]>;
}
const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
function trustPolicy(role: MockResource): Statement[] {
  const doc = role.inputs.assumeRolePolicy;
  return (typeof doc === "string" ? JSON.parse(doc) : doc).Statement as Statement[];
}
function inlineStatements(role: MockResource): Statement[] {
  const inline = role.inputs.inlinePolicies as { name: string; policy: string }[];
  return inline.flatMap((p) => (JSON.parse(p.policy) as { Statement: Statement[] }).Statement);
}

/** The function's role: trusted by Lambda only, allowed GetSecretValue on exactly the two secrets and nothing else inline. */
function assertLeastPrivilege(run: MockRun, managed: readonly string[]) {
  const role = one(run, "aws:iam/role:Role", "GatewayRole");
  assert.equal(fn(run).inputs.role, role.state.arn, "the function runs as GatewayRole");
  for (const s of trustPolicy(role)) {
    assert.equal(s.Effect, "Allow");
    assert.deepEqual(list(s.Action), ["sts:AssumeRole"]);
    assert.deepEqual(s.Principal, { Service: "lambda.amazonaws.com" }, "only Lambda may assume the gateway's role");
  }
  const { rules, credentials } = secrets(run);
  assert.deepEqual(inlineStatements(role), [{ Effect: "Allow", Action: ["secretsmanager:GetSecretValue"], Resource: [rules, credentials] }]);
  // AWS-managed: CloudWatch Logs and (in a VPC) network interfaces; no Secrets Manager action.
  assert.deepEqual([...(role.inputs.managedPolicyArns as string[])].sort(), [...managed].sort());
  // Nothing else attaches policies to any role.
  for (const type of ["aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policy:Policy", "aws:iam/policyAttachment:PolicyAttachment"]) {
    assert.deepEqual(ofType(run, type), [], `no ${type}`);
  }
}

function assertCleanRun(run: MockRun) {
  assert.deepEqual(run.errors, [], "the program ran without errors");
  assert.deepEqual(run.unmockedCalls, [], "every data source SST called is mocked");
  assert.deepEqual([...new Set(run.rpc)].sort(), ["Provider.Aws.Bootstrap", "Runtime.Build"], "the CLI calls SST made are the ones the harness answers");
  // SST was handed a finished bundle (infra/bundle.ts), which the CLI ships as it is: the very
  // file the Lambda tests invoke, byte for byte (scripts/build-lambda.mjs, built here afresh).
  assert.deepEqual(
    run.builds.map((b) => [b.handler, b.sha256]),
    [["lambda.handler", testedBundleSha256]],
  );
}

/** The SHA-256 of the bundle the Lambda tests build (test/lambda/events.ts). */
let testedBundleSha256 = "";

test("sst.config.ts and infra/ type-check against SST's platform types (tsconfig.infra.json)", async (t) => {
  const r = await ready(t, () => typecheck);
  if (r) assert.equal(r.code, 0, `tsc -p tsconfig.infra.json:${r.output}`);
});

describe("stage with an existing database, behind the function URL", () => {
  test("runs cleanly and builds the handler", async (t) => {
    const run = await ready(t, () => external);
    if (run) assertCleanRun(run);
  });

  test("Lambda: nodejs22.x on arm64, 256 MB, 30 s, the tested bundle's handler", async (t) => {
    const run = await ready(t, () => external);
    if (!run) return;
    const { inputs } = fn(run);
    assert.equal(inputs.runtime, "nodejs22.x");
    assert.deepEqual(inputs.architectures, ["arm64"]);
    assert.equal(inputs.memorySize, 256);
    assert.equal(inputs.timeout, 30);
    assert.equal(inputs.handler, "lambda.handler");
    assert.equal(inputs.packageType, "Zip");
    assert.equal(inputs.vpcConfig, undefined);
  });

  test("environment: the four files are secretsmanager:<arn>#key references to the declared secrets; the upstream as deployed", async (t) => {
    const run = await ready(t, () => external);
    if (!run) return;
    const { rules, credentials } = secrets(run);
    const e = env(run);
    assert.equal(e.HBAGATE_HBA_FILE, `secretsmanager:${rules}#hba`);
    assert.equal(e.HBAGATE_IDENT_FILE, `secretsmanager:${rules}#ident`);
    assert.equal(e.HBAGATE_ROLE_CREDENTIALS_FILE, `secretsmanager:${credentials}#roles`);
    assert.equal(e.HBAGATE_VERIFIER_FILE, undefined, "the verifier only with HBAGATE_DEPLOY_VERIFIER");
    assert.equal(e.HBAGATE_UPSTREAM_HOST, "db.example.net");
    assert.equal(e.HBAGATE_UPSTREAM_PORT, "6432");
    assert.equal(e.HBAGATE_UPSTREAM_SSL, "verify-full");
    assert.equal(e.HBAGATE_STATEMENT_TIMEOUT_MS, "25000");
    // No secret value ever sits in the environment: every HBAGATE_ value is a reference or a plain setting.
    for (const [k, v] of Object.entries(e)) assert.doesNotMatch(`${k}=${v}`, /PASSWORD/, k);
    // Without a service user, no login of the gateway's own: the brake counts per instance.
    assert.equal(e.HBAGATE_SERVICE_USER, undefined);
    assert.equal(e.HBAGATE_AUTH_SHARED_TABLE, undefined);
  });

  test("settings as deployed: responses within Lambda's payload, bounded cold-start attempts, the upstream verified with the RDS roots", async (t) => {
    const run = await ready(t, () => external);
    if (run) assertServerlessSettings(run);
  });

  test("function URL: auth NONE (hba rules and passwords decide; callers are host connections), no CORS at the URL", async (t) => {
    const run = await ready(t, () => external);
    if (!run) return;
    const url = one(run, "aws:lambda/functionUrl:FunctionUrl");
    assert.equal(url.inputs.authorizationType, "NONE");
    assert.equal(url.inputs.functionName, fn(run).state.name);
    assert.equal(url.inputs.cors, undefined, "HBAGATE_CORS_ORIGINS decides, not the URL");
    assert.equal(url.inputs.invokeMode, "BUFFERED");
    // The public invoke permissions are exactly the two a NONE function URL needs.
    const permissions = ofType(run, "aws:lambda/permission:Permission").map((p) => p.inputs);
    assert.deepEqual(
      permissions.map((p) => [p.action, p.principal, p.functionUrlAuthType ?? null, p.invokedViaFunctionUrl ?? null]).sort(),
      [
        ["lambda:InvokeFunction", "*", null, true],
        ["lambda:InvokeFunctionUrl", "*", "NONE", null],
      ],
    );
    assert.equal(run.outputs.url, url.state.functionUrl);
  });

  test("IAM: the role reads exactly the two declared secrets with GetSecretValue, nothing else of Secrets Manager", async (t) => {
    const run = await ready(t, () => external);
    if (run) assertLeastPrivilege(run, [BASIC_EXECUTION]);
  });

  test("the secrets are plain Secrets Manager secrets, created without a value; their ARNs are outputs", async (t) => {
    const run = await ready(t, () => external);
    if (!run) return;
    const { rules, credentials } = secrets(run);
    assert.equal(ofType(run, "aws:secretsmanager/secret:Secret").length, 2);
    assert.deepEqual(ofType(run, "aws:secretsmanager/secretVersion:SecretVersion"), [], "values are put by the operator, never by a deploy");
    assert.equal(run.outputs.rulesSecret, rules);
    assert.equal(run.outputs.credentialsSecret, credentials);
    const linkable = run.resources.filter((r) => r.type === "sst:sst:Linkable").map((r) => r.name);
    assert.deepEqual(linkable, ["GatewaySecrets"]);
  });

  test("no VPC, database or API Gateway", async (t) => {
    const run = await ready(t, () => external);
    if (!run) return;
    const types = new Set(custom(run).map((r) => r.type));
    for (const type of ["aws:ec2/vpc:Vpc", "aws:rds/instance:Instance", "aws:rds/proxy:Proxy", "aws:apigatewayv2/api:Api", "aws:ec2/vpcEndpoint:VpcEndpoint"]) {
      assert.ok(!types.has(type), type);
    }
  });
});

describe('stage "demo": VPC, RDS PostgreSQL behind RDS Proxy; with the API Gateway and verifier options', () => {
  test("runs cleanly and builds the handler", async (t) => {
    const run = await ready(t, () => demo);
    if (run) assertCleanRun(run);
  });

  test("a VPC whose private subnets hold the function, the proxy and a Secrets Manager endpoint", async (t) => {
    const run = await ready(t, () => demo);
    if (!run) return;
    const vpc = one(run, "aws:ec2/vpc:Vpc");
    const privateSubnets = ofType(run, "aws:ec2/subnet:Subnet")
      .filter((s) => s.name.includes("Private"))
      .map((s) => `${s.name}-id`);
    assert.equal(privateSubnets.length, 2);
    assert.deepEqual(ofType(run, "aws:ec2/natGateway:NatGateway"), [], "no NAT: no internet egress");
    const sg = `${one(run, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").name}-id`;
    const vpcConfig = rec(fn(run).inputs.vpcConfig);
    assert.deepEqual(vpcConfig.subnetIds, privateSubnets);
    assert.deepEqual(vpcConfig.securityGroupIds, [sg]);
    const endpoint = one(run, "aws:ec2/vpcEndpoint:VpcEndpoint").inputs;
    assert.equal(endpoint.vpcId, `${vpc.name}-id`);
    assert.equal(endpoint.serviceName, "com.amazonaws.us-east-1.secretsmanager");
    assert.equal(endpoint.vpcEndpointType, "Interface");
    assert.equal(endpoint.privateDnsEnabled, true);
    assert.deepEqual(endpoint.subnetIds, vpcConfig.subnetIds);
  });

  test("an RDS PostgreSQL instance and an RDS Proxy targeting it; the function points at the proxy over verified TLS", async (t) => {
    const run = await ready(t, () => demo);
    if (!run) return;
    const instance = one(run, "aws:rds/instance:Instance");
    assert.equal(instance.inputs.engine, "postgres");
    assert.equal(instance.inputs.storageEncrypted, true);
    const proxy = one(run, "aws:rds/proxy:Proxy");
    assert.equal(proxy.inputs.engineFamily, "POSTGRESQL");
    assert.deepEqual(proxy.inputs.vpcSubnetIds, rec(fn(run).inputs.vpcConfig).subnetIds);
    const target = one(run, "aws:rds/proxyTarget:ProxyTarget").inputs;
    assert.equal(target.dbProxyName, proxy.state.name);
    assert.equal(target.dbInstanceIdentifier, instance.state.identifier);
    one(run, "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup");
    const e = env(run);
    assert.equal(e.HBAGATE_UPSTREAM_HOST, proxy.state.endpoint);
    assert.equal(e.HBAGATE_UPSTREAM_PORT, "5432");
    assertServerlessSettings(run);
    const tags = rec(instance.inputs.tags);
    assert.equal(run.outputs.databaseSecret, tags["sst:lookup:password"], "the output names the master user's secret, never the password");
  });

  test("IAM: still exactly the two declared secrets (not the proxy's), plus VPC network interfaces", async (t) => {
    const run = await ready(t, () => demo);
    if (!run) return;
    assertLeastPrivilege(run, [BASIC_EXECUTION, VPC_ACCESS]);
    const { credentials } = secrets(run);
    assert.equal(env(run).HBAGATE_VERIFIER_FILE, `secretsmanager:${credentials}#verifier`);
  });

  test("with a service user: its login (password from the credentials secret, never the environment) and the brute-force brake shared across instances", async (t) => {
    const run = await ready(t, () => demo);
    if (!run) return;
    const e = env(run);
    assert.equal(e.HBAGATE_SERVICE_USER, "hbagate");
    assert.equal(e.HBAGATE_AUTH_SHARED_TABLE, "hbagate_failures");
    assert.equal(e.HBAGATE_SERVICE_PASSWORD, undefined);
    for (const [k, v] of Object.entries(e)) assert.doesNotMatch(`${k}=${v}`, /PASSWORD/, k);
    const s = loadLambdaSettings(e);
    assert.equal(s.HBAGATE_AUTH_SHARED_TABLE, "hbagate_failures");
  });

  test("API Gateway HTTP API in front, payload v2, no CORS of its own; no function URL", async (t) => {
    const run = await ready(t, () => demo);
    if (!run) return;
    assert.deepEqual(ofType(run, "aws:lambda/functionUrl:FunctionUrl"), []);
    const api = one(run, "aws:apigatewayv2/api:Api");
    assert.equal(api.inputs.protocolType, "HTTP");
    assert.equal(api.inputs.corsConfiguration, undefined);
    const integration = one(run, "aws:apigatewayv2/integration:Integration").inputs;
    assert.equal(integration.integrationType, "AWS_PROXY");
    assert.equal(integration.payloadFormatVersion, "2.0");
    assert.equal(integration.integrationUri, fn(run).state.arn);
    assert.equal(one(run, "aws:apigatewayv2/route:Route").inputs.routeKey, "$default");
    const permission = one(run, "aws:lambda/permission:Permission").inputs;
    assert.equal(permission.principal, "apigateway.amazonaws.com");
    assert.equal(run.outputs.url, api.state.apiEndpoint);
  });
});

describe("with mutual TLS: an API Gateway custom domain verifying client certificates", () => {
  test("runs cleanly and builds the handler", async (t) => {
    const run = await ready(t, () => mutualTls);
    if (!run) return;
    assertCleanRun(run);
  });

  test("the domain with the ACM certificate and the S3 truststore, TLS 1.2; the execute-api endpoint (no mutual TLS) is off", async (t) => {
    const run = await ready(t, () => mutualTls);
    if (!run) return;
    assert.deepEqual(ofType(run, "aws:lambda/functionUrl:FunctionUrl"), []);
    const api = one(run, "aws:apigatewayv2/api:Api");
    assert.equal(api.inputs.disableExecuteApiEndpoint, true, "callers cannot go around the certificate check");
    assert.equal(api.inputs.corsConfiguration, undefined);
    const domain = one(run, "aws:apigatewayv2/domainName:DomainName").inputs;
    assert.equal(domain.domainName, MTLS.HBAGATE_DEPLOY_MTLS_DOMAIN);
    assert.deepEqual(domain.mutualTlsAuthentication, { truststoreUri: MTLS.HBAGATE_DEPLOY_MTLS_TRUSTSTORE, truststoreVersion: MTLS.HBAGATE_DEPLOY_MTLS_TRUSTSTORE_VERSION });
    assert.deepEqual(domain.domainNameConfiguration, { certificateArn: MTLS.HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN, endpointType: "REGIONAL", securityPolicy: "TLS_1_2" });
    // The mapping joins this API to the domain (ids as Pulumi's mocks make them: the resource's name and "-id").
    const mapping = one(run, "aws:apigatewayv2/apiMapping:ApiMapping").inputs;
    assert.equal(mapping.apiId, `${api.name}-id`);
    assert.equal(mapping.domainName, `${one(run, "aws:apigatewayv2/domainName:DomainName").name}-id`);
    // The function is reached through the API as before, with payload v2 (requestContext.authentication.clientCert).
    assert.equal(one(run, "aws:apigatewayv2/integration:Integration").inputs.payloadFormatVersion, "2.0");
    assert.deepEqual(ofType(run, "aws:route53/record:Record"), [], "no DNS records made: the name is pointed by its owner");
  });
});
