/// <reference types="node" />
// The function's code: the bundle scripts/build-lambda.mjs makes, the very
// file the tests invoke (test/lambda/), built here and handed to SST as a
// finished bundle (`bundle:`), so SST ships it as it is instead of bundling
// functions/lambda.ts with its own options.
import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";

/** Where the bundle is built for a deploy; HBAGATE_DEPLOY_BUNDLE_DIR overrides (the tests build one per run). */
export const DEFAULT_BUNDLE_DIR = "dist/lambda-deploy";

/** Build the Lambda bundle into `dir` under the project `root` (lambda.mjs, exporting `handler`); the directory, absolute. */
export function buildFunctionBundle(root: string, dir: string): string {
  const out = resolve(root, dir);
  execFileSync(process.execPath, [join(root, "scripts", "build-lambda.mjs"), join(out, "lambda.mjs")], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  return out;
}
