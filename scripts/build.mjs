#!/usr/bin/env node
// Compiles the gateway to plain JavaScript in dist/: dist/cli.mjs for the
// `hbagate` command and `npm start` (dependencies stay in node_modules), and
// dist/lambda.mjs, the self-contained AWS Lambda bundle. Run by `npm install`
// (prepare), before `npm start` and by `npm test`. Production runs these
// files, never the TypeScript sources through a loader.
//
// Without esbuild (an install with --omit=dev) an existing dist/ is kept as it
// is: that is how a production image is meant to be made (build, then prune).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const CLI = fileURLToPath(new URL("../dist/cli.mjs", import.meta.url));

async function main() {
  let esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    if (existsSync(CLI)) {
      console.error("hbagate: esbuild is not installed (production install): keeping the existing dist/");
      return 0;
    }
    console.error("hbagate: dist/ is missing and esbuild is not installed: run `npm install` (with dev dependencies) to build it");
    return 1;
  }
  await esbuild.build({
    entryPoints: [fileURLToPath(new URL("../functions/cli.ts", import.meta.url))],
    outfile: CLI,
    bundle: true,
    // Dependencies are installed beside it; only our own code is compiled.
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    logLevel: "warning",
    absWorkingDir: root,
  });
  const { buildLambda } = await import("./build-lambda.mjs");
  await buildLambda();
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main();
