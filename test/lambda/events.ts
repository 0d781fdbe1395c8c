// Lambda events as AWS sends them (a function URL's payload v2), and the
// bundled handler built for one test file: its module scope reads the
// environment once, so each file builds its own copy and imports it after
// setting process.env.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { run } from "../harness/spawn.ts";
import { FAKE_ACCESS_KEY_ID, FAKE_REGION, FAKE_SECRET_ACCESS_KEY } from "../harness/secrets-manager.ts";
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildLambda } from "../../scripts/build-lambda.mjs";

export interface LambdaResult {
  readonly statusCode: number;
  readonly body: string;
  readonly headers?: Record<string, string>;
  readonly isBase64Encoded?: boolean;
}
export type Handler = (event: unknown, context?: unknown) => Promise<LambdaResult>;

export interface EventOptions {
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly sourceIp?: string;
}

/** A function URL request (payload format 2.0), as the Lambda service hands it to the handler. */
export function functionUrlEvent(body: unknown, o: EventOptions = {}) {
  const path = o.path ?? "/v1/postgres/sql";
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: "",
    headers: { "content-type": "application/json", host: "abc123.lambda-url.eu-west-1.on.aws", "x-forwarded-proto": "https", ...o.headers },
    requestContext: {
      accountId: "anonymous",
      apiId: "abc123",
      authentication: null,
      authorizer: {},
      domainName: "abc123.lambda-url.eu-west-1.on.aws",
      domainPrefix: "abc123",
      http: { method: body === undefined ? "GET" : "POST", path, protocol: "HTTP/1.1", sourceIp: o.sourceIp ?? "198.51.100.7", userAgent: "test" },
      requestId: "req-1",
      routeKey: "$default",
      stage: "$default",
      time: "24/Nov/2026:01:00:00 +0000",
      timeEpoch: 1795482000000,
    },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    isBase64Encoded: false,
  };
}

/** The JSON Lambda would send back for this result: what its payload limit measures. */
export const payloadBytes = (r: LambdaResult) => Buffer.byteLength(JSON.stringify(r));

export const errorOf = (r: LambdaResult) => (JSON.parse(r.body) as { error?: { code: string; message: string } }).error;

/** Build dist-style lambda.mjs into a fresh directory; its path. */
export async function buildHandler(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "hbagate-lambda-"));
  const built = (await buildLambda(join(dir, "lambda.mjs"))) as { outfile: string };
  return built.outfile;
}

/** Import a built handler (its module scope runs now, with process.env as it is). */
export async function importHandler(outfile: string): Promise<Handler> {
  return ((await import(pathToFileURL(outfile).href)) as { handler: Handler }).handler;
}

/** What the handler answered in a process of its own, and that process's peak memory. */
export interface OwnProcessOutcome {
  readonly status: number;
  /** The response body, left out past 1 MiB (the process's output is not where a large answer is measured). */
  readonly body: string | undefined;
  /** Peak resident memory of the whole process, bytes. */
  readonly maxRss: number;
}

/**
 * One cold start and one request: the built handler at `bundle` in a fresh Node process whose
 * whole environment is `env` (what Node reads only at start, NODE_EXTRA_CA_CERTS say, and a
 * peak memory that is this request's alone). Fails unless the process exits 0.
 */
export async function invokeInOwnProcess(bundle: string, event: unknown, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<OwnProcessOutcome> {
  const script = join(dirname(bundle), "invoke.mjs");
  if (!existsSync(script)) {
    writeFileSync(
      script,
      `const { handler } = await import(${JSON.stringify(pathToFileURL(bundle).href)});
       const r = await handler(JSON.parse(process.argv[2]));
       const maxRss = process.resourceUsage().maxRSS * 1024;
       console.log(JSON.stringify({ status: r.statusCode, body: r.body.length <= 1 << 20 ? r.body : undefined, maxRss }));
       process.exit(0);`,
    );
  }
  const child = await run(process.execPath, [script, JSON.stringify(event)], { env, timeoutMs });
  assert.equal(child.code, 0, child.stderr);
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!) as OwnProcessOutcome;
}

/** An outcome's status, its error code (null for a 200) and the peak memory. */
export function codeAndMemory(o: OwnProcessOutcome): { status: number; code: string | null; maxRss: number } {
  const code = o.status === 200 ? null : ((JSON.parse(o.body!) as { error?: { code: string } }).error?.code ?? null);
  return { status: o.status, code, maxRss: o.maxRss };
}

/**
 * The environment of a function deployed as infra/gateway.ts deploys it: its
 * configuration in the secrets "hbagate/rules" (hba, ident) and
 * "hbagate/credentials" (roles) of the fake Secrets Manager, the real SDK
 * pointed at it, and the upstream on loopback without TLS.
 */
export function deployedEnvironment(secrets: { readonly endpoint: string; arn(name: string): string }, upstreamPort: number): Record<string, string> {
  const rules = secrets.arn("hbagate/rules");
  return {
    AWS_REGION: FAKE_REGION,
    AWS_ACCESS_KEY_ID: FAKE_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: FAKE_SECRET_ACCESS_KEY,
    HBAGATE_SECRETS_ENDPOINT: secrets.endpoint,
    HBAGATE_HBA_FILE: `secretsmanager:${rules}#hba`,
    HBAGATE_IDENT_FILE: `secretsmanager:${rules}#ident`,
    HBAGATE_ROLE_CREDENTIALS_FILE: `secretsmanager:${secrets.arn("hbagate/credentials")}#roles`,
    HBAGATE_UPSTREAM_HOST: "127.0.0.1",
    HBAGATE_UPSTREAM_PORT: String(upstreamPort),
    HBAGATE_UPSTREAM_SSL: "disable",
  };
}
