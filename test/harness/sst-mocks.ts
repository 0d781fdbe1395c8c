// Offline checks of the SST app: the platform SST generates, a type-check
// against it, and the program run under Pulumi mocks. Nothing here talks to
// AWS. SST's Go CLI normally bundles sst.config.ts and hands it to Pulumi;
// bundleSstProgram does that bundling the way the CLI does (pkg/project/run.go
// in sst/sst) and sst-mock-program.ts stands in for Pulumi and the CLI.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { run as runChild } from "./spawn.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const platform = join(root, ".sst", "platform");

/**
 * The SST CLI without the things it would fetch from outside npm: the
 * dependency check downloads Pulumi and Bun from GitHub, telemetry posts home,
 * and without Bun it installs the platform's packages with npm.
 */
const SST_OFFLINE_ENV = { SST_SKIP_DEPENDENCY_CHECK: "1", SST_TELEMETRY_DISABLED: "1", SST_NO_BUN: "1" };

export type PlatformState = { readonly ready: true } | { readonly ready: false; readonly skip: string };

/**
 * `npx sst install` when .sst/platform is missing (a fresh clone): it only
 * needs the npm registry. Without one (and only off CI) the caller skips.
 */
export async function prepareSstPlatform(timeoutMs: number): Promise<PlatformState> {
  if (existsSync(join(platform, "config.d.ts"))) return { ready: true };
  // Asked first: npm retries an unreachable registry for minutes before failing.
  const ping = await run("npm", ["ping"], {}, 30_000);
  if (ping.code !== 0 && !process.env.CI) {
    return { ready: false, skip: `the npm registry is unreachable, so \`sst install\` cannot fetch SST's platform packages (npm ping: ${lastLine(ping.output)})` };
  }
  const install = await run(join(root, "node_modules", ".bin", "sst"), ["install", "--stage", "ci"], SST_OFFLINE_ENV, timeoutMs);
  if (install.code === 0 && existsSync(join(platform, "config.d.ts"))) return { ready: true };
  throw new Error(`npx sst install --stage ci failed (exit ${install.code}):\n${install.output}`);
}

/** tsc over sst.config.ts and infra/ with tsconfig.infra.json (incremental, its cache in .sst/): exit code and diagnostics. */
export async function typecheckInfra(timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.infra.json")], {}, timeoutMs);
}

/**
 * Bundles sst.config.ts as the SST CLI does: $app, $cli and $dev defined as
 * constants, the shim that provides $interpolate, $util and the rest injected,
 * `aws` and `sst` as globals, the program run through SST's own auto/run.ts
 * (its stack transformations and link bookkeeping). Packages stay external and
 * resolve from .sst/platform/node_modules, so the bundle is written there.
 */
export async function bundleSstProgram(stage: string): Promise<string> {
  const outfile = join(platform, `hbagate-mock.${stage}.mjs`);
  // What app() in sst.config.ts returns for the stage, and the CLI's own facts.
  const app = { name: "hbagate", stage, removal: "remove", protect: false, home: "aws", providers: { aws: { version: "7.20.0" } } };
  const cli = { command: "deploy", dev: false, paths: { home: join(root, ".sst", "mock-home"), root, work: join(root, ".sst"), platform }, state: { version: {} } };
  await build({
    stdin: {
      contents: [
        `import * as aws from "@pulumi/aws";`,
        `import * as sst from ${JSON.stringify(join(platform, "src/components"))};`,
        `globalThis.aws = aws; globalThis.sst = sst;`,
        `import { run } from ${JSON.stringify(join(platform, "src/auto/run.ts"))};`,
        `import mod from ${JSON.stringify(join(root, "sst.config.ts"))};`,
        // The CLI's entry runs this at the top level inside Pulumi's root stack;
        // here the child process does, under runInPulumiStack.
        `export default () => run(mod.run);`,
      ].join("\n"),
      resolveDir: root,
      loader: "ts",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    inject: [join(platform, "src/shim/run.js")],
    define: { $app: JSON.stringify(app), $cli: JSON.stringify(cli), $dev: "false" },
    outfile,
    logLevel: "error",
  });
  return outfile;
}

/** What the program did under the mocks: sst-mock-program.ts prints it as JSON. */
export interface MockRun {
  readonly resources: readonly MockResource[];
  readonly unmockedCalls: readonly string[];
  readonly rpc: readonly string[];
  readonly builds: readonly { readonly handler: string; readonly exports: readonly string[]; readonly bytes: number; readonly bundle?: string; readonly sha256?: string }[];
  readonly outputs: Readonly<Record<string, unknown>>;
  readonly errors: readonly string[];
}
export interface MockResource {
  readonly type: string;
  readonly name: string;
  readonly custom: boolean;
  readonly inputs: Readonly<Record<string, unknown>>;
  readonly state: Readonly<Record<string, unknown>>;
}

/** Runs the bundled program in its own process: Pulumi's runtime state is per process. */
export async function runSstProgramUnderMocks(stage: string, env: Readonly<Record<string, string>>, timeoutMs: number): Promise<MockRun> {
  const bundle = await bundleSstProgram(stage);
  const child = join(root, "test", "harness", "sst-mock-program.ts");
  // A clean deploy environment: only what the test passes, no HBAGATE_DEPLOY_* from the shell.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HBAGATE_")));
  // Each run builds its functions into a directory of its own: two stages run at once, and
  // with one shared .sst/artifacts they would write (and archive) the same files.
  const artifacts = await mkdtemp(join(tmpdir(), `hbagate-sst-artifacts-${stage}-`));
  // The function's bundle too (sst.config.ts builds it): a directory per run, reported back.
  const bundleDir = join(artifacts, "function-bundle");
  let r: { code: number | null; output: string };
  try {
    r = await run(process.execPath, ["--import", "tsx", child, bundle, artifacts], { HBAGATE_DEPLOY_BUNDLE_DIR: bundleDir, ...env }, timeoutMs, base);
  } finally {
    await rm(artifacts, { recursive: true, force: true });
  }
  const marker = r.output.lastIndexOf("\nMOCK-RUN ");
  if (r.code !== 0 || marker < 0) throw new Error(`the SST program failed under mocks (exit ${r.code}):\n${r.output}`);
  return JSON.parse(r.output.slice(marker + "\nMOCK-RUN ".length)) as MockRun;
}

/** run() in its own process group (so a timeout also ends what it started: sst runs npm), as exit code and output; one that cannot start exits null. */
async function run(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
  baseEnv: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; output: string }> {
  try {
    const r = await runChild(command, args, { cwd: root, env: { ...baseEnv, ...env }, timeoutMs, group: true });
    return { code: r.code, output: `\n${r.output}${r.timedOut ? `\n(killed after ${timeoutMs} ms)` : ""}` };
  } catch (err) {
    return { code: null, output: `\n\n${(err as Error).message}` };
  }
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}
