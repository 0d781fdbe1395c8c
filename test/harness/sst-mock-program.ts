// Runs one SST program bundle (argv[2], from sst-mocks.ts) under Pulumi mocks,
// building its functions into argv[3] (a directory of the run's own),
// and prints what it did as one `MOCK-RUN {json}` line. A process of its own:
// Pulumi's mocks and stack transformations are global to a process.
//
// It stands in for the two things a deploy has that a test must not:
// - Pulumi's engine and the AWS provider: pulumi.runtime.setMocks records every
//   resource with its inputs and answers the few data-source calls SST makes
//   (region, account, partition, zones, IAM policy documents);
// - the SST CLI's RPC server (SST_SERVER), which SST components call for the
//   bootstrap bucket and to build function code.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import type { MockResource, MockRun } from "./sst-mocks.ts";

const REGION = "us-east-1";
const ACCOUNT = "123456789012";

const bundle = process.argv[2];
const artifacts = process.argv[3] ?? "";
if (!bundle || !artifacts) throw new Error("usage: sst-mock-program.ts BUNDLE ARTIFACTS-DIR");
const platform = dirname(bundle);
const root = join(platform, "..", "..");

interface Pulumi {
  runtime: {
    setMocks(
      mocks: {
        newResource(a: { type: string; name: string; inputs: Record<string, unknown>; custom?: boolean }): { id: string | undefined; state: Record<string, unknown> };
        call(a: { token: string; inputs: Record<string, unknown> }): Record<string, unknown>;
      },
      project: string,
      stack: string,
      preview: boolean,
    ): Promise<void>;
    /** What Pulumi's language host wraps a program in: the root stack resource, then the program. */
    runInPulumiStack(init: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown> | undefined>;
  };
}
// The SDK the bundle itself resolves, so the mocks reach the same module instance.
const pulumi = createRequire(join(platform, "package.json"))("@pulumi/pulumi") as Pulumi;

const resources: MockResource[] = [];
const unmockedCalls: string[] = [];
const rpc: string[] = [];
const builds: { handler: string; exports: string[]; bytes: number; bundle?: string; sha256?: string }[] = [];
const errors: string[] = [];
let outputs: Record<string, unknown> = {};

process.on("unhandledRejection", (err) => errors.push(String((err as Error)?.stack ?? err)));
process.on("uncaughtException", (err) => errors.push(String(err.stack ?? err)));

/** aws:iam/role:Role "X" -> arn:aws:iam:<region>:<account>:role/X; SST splits some ARNs on ':'. */
function arnOf(type: string, name: string): string {
  const [, module = "", kind = ""] = /^aws:([a-z0-9]+)\/([a-zA-Z0-9]+):/.exec(type) ?? [];
  if (type === "aws:lambda/function:Function") return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
  return `arn:aws:${module || "mock"}:${REGION}:${ACCOUNT}:${kind.toLowerCase() || "resource"}/${name}`;
}

/** Attributes AWS would compute that SST reads back (ARNs, endpoints, URLs). */
function computed(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
  const lower = name.toLowerCase();
  switch (type) {
    case "aws:secretsmanager/secret:Secret":
      return { arn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${String(inputs.namePrefix ?? `${name}-`)}mock-AbCdEf` };
    case "aws:lambda/functionUrl:FunctionUrl":
      return { functionUrl: `https://${lower}.lambda-url.${REGION}.on.aws/` };
    case "aws:rds/proxy:Proxy":
      return { endpoint: `${lower}.proxy-mock.${REGION}.rds.amazonaws.com` };
    case "aws:rds/instance:Instance":
      return { endpoint: `${lower}.mock.${REGION}.rds.amazonaws.com:5432`, identifier: lower, port: 5432 };
    case "aws:apigatewayv2/api:Api":
      return { apiEndpoint: `https://mockapi.execute-api.${REGION}.amazonaws.com`, executionArn: `arn:aws:execute-api:${REGION}:${ACCOUNT}:mockapi` };
    default:
      return {};
  }
}

/** aws.iam.getPolicyDocument renders statements as IAM JSON; the test reads the role's policy from it. */
function policyJson(inputs: Record<string, unknown>): string {
  const statements = (inputs.statements ?? []) as { effect?: string; actions?: string[]; resources?: string[]; principals?: { type: string; identifiers: string[] }[] }[];
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: statements.map((s) => ({
      Effect: s.effect ?? "Allow",
      ...(s.actions ? { Action: s.actions } : {}),
      ...(s.resources ? { Resource: s.resources } : {}),
      ...(s.principals ? { Principal: Object.fromEntries(s.principals.map((p) => [p.type, p.identifiers])) } : {}),
    })),
  });
}

await pulumi.runtime.setMocks(
  {
    newResource({ type, name, inputs, custom }) {
      const state = custom ? { name: inputs.name ?? name, arn: arnOf(type, name), ...inputs, ...computed(type, name, inputs) } : {};
      resources.push({ type, name, custom: custom === true, inputs, state });
      return { id: custom ? `${name}-id` : undefined, state };
    },
    call({ token, inputs }) {
      switch (token) {
        case "aws:index/getRegion:getRegion":
          return { id: REGION, name: REGION, region: REGION };
        case "aws:index/getCallerIdentity:getCallerIdentity":
          return { id: ACCOUNT, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/mock`, userId: "MOCK" };
        case "aws:index/getPartition:getPartition":
          return { id: "aws", partition: "aws", dnsSuffix: "amazonaws.com" };
        case "aws:index/getAvailabilityZones:getAvailabilityZones":
          return { id: REGION, names: [`${REGION}a`, `${REGION}b`, `${REGION}c`], zoneIds: ["use1-az1", "use1-az2", "use1-az3"] };
        case "aws:iam/getPolicyDocument:getPolicyDocument":
          // The provider echoes its inputs; SST reads `statements` back.
          return { ...inputs, id: "policy", json: policyJson(inputs) };
        default:
          unmockedCalls.push(token);
          return {};
      }
    },
  },
  "hbagate",
  "mock",
  false,
);

/**
 * The SST CLI's side of its RPC (pkg/server in sst/sst). Runtime.Build bundles
 * the handler with esbuild and the options of SST's Node runtime
 * (pkg/runtime/node/build.go), so a missing handler or an unbundlable import
 * fails here as it would in `sst deploy`; the archive step that follows needs
 * real files anyway.
 */
async function answer(method: string, input: Record<string, unknown>): Promise<unknown> {
  switch (method) {
    case "Provider.Aws.Bootstrap":
      return { asset: "sst-asset-mock", assetEcrRegistryId: ACCOUNT, assetEcrUrl: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/sst-asset`, state: "sst-state-mock", appsyncHttp: "", appsyncRealtime: "" };
    case "Runtime.Build": {
      const handler = String(input.handler);
      // A finished bundle: the CLI ships the directory as it is (pkg/runtime: out = input.Bundle).
      if (typeof input.bundle === "string" && input.bundle !== "") {
        const file = join(resolve(root, input.bundle), `${handler.slice(0, handler.lastIndexOf("."))}.mjs`);
        if (!existsSync(file)) throw new Error(`Handler not found: ${handler} in ${input.bundle}`);
        builds.push({ handler, exports: [], bytes: statSync(file).size, bundle: resolve(root, input.bundle), sha256: createHash("sha256").update(readFileSync(file)).digest("hex") });
        return { handler, out: input.bundle, errors: [], sourcemaps: [] };
      }
      const dot = handler.lastIndexOf(".");
      const base = handler.slice(0, dot);
      const file = [".ts", ".mts", ".js", ".mjs"].map((ext) => join(root, base + ext)).find((f) => existsSync(f));
      if (!file) throw new Error(`Handler not found: ${handler}`);
      // The run's own artifacts directory (argv[3]), not the shared .sst/artifacts.
      const out = join(artifacts, `${String(input.functionID)}-src`);
      const result = await build({
        entryPoints: [file],
        outfile: join(out, `${basename(base)}.mjs`),
        bundle: true,
        platform: "node",
        format: "esm",
        target: "esnext",
        mainFields: ["module", "main"],
        keepNames: true,
        // Not minified as SST does: the check is that it bundles and what it exports.
        external: ["sharp", "pg-native"],
        banner: { js: "import { createRequire as topLevelCreateRequire } from 'module';\nconst require = topLevelCreateRequire(import.meta.url);" },
        metafile: true,
        logLevel: "silent",
      });
      for (const o of Object.values(result.metafile.outputs)) builds.push({ handler, exports: o.exports, bytes: o.bytes });
      return { handler: `${basename(base)}${handler.slice(dot)}`, out, errors: [], sourcemaps: [] };
    }
    default:
      // SST's rpc client treats this wording as "method not found".
      throw new Error(`rpc: can't find method ${method}`);
  }
}

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk: Buffer) => (body += chunk.toString()));
  req.on("end", () => {
    const { method, params } = JSON.parse(body) as { method: string; params: [Record<string, unknown>] };
    rpc.push(method);
    // No keep-alive: an idle pooled socket would hold the process open for seconds.
    res.setHeader("connection", "close");
    answer(method, params[0]).then(
      (result) => res.end(JSON.stringify({ result, error: null })),
      (err: Error) => res.end(JSON.stringify({ result: null, error: err.message })),
    );
  });
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
// Unreferenced: the process ends when the program's last pending work does.
server.unref();
process.env.SST_SERVER = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const program = (await import(pathToFileURL(bundle).href)) as { default: () => Promise<Record<string, unknown>> };
try {
  outputs = (await pulumi.runtime.runInPulumiStack(program.default)) ?? {};
} catch (err) {
  errors.push(String((err as Error)?.stack ?? err));
}

// Resources created inside apply callbacks register later; the event loop
// empties only when every one has.
process.once("beforeExit", () => {
  const run: MockRun = { resources, unmockedCalls, rpc, builds, outputs, errors };
  process.stdout.write(`\nMOCK-RUN ${JSON.stringify(run)}\n`);
});
