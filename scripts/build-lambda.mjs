#!/usr/bin/env node
// Bundles functions/lambda.ts into one ESM file for AWS Lambda (dist/lambda.mjs).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

export async function buildLambda(outfile = fileURLToPath(new URL("../dist/lambda.mjs", import.meta.url))) {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("../functions/lambda.ts", import.meta.url))],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    minify: true,
    sourcemap: false,
    metafile: true,
    // CommonJS dependencies call require() for Node built-ins.
    banner: { js: 'import { createRequire as __hbagateCreateRequire } from "node:module"; const require = __hbagateCreateRequire(import.meta.url);' },
    logLevel: "warning",
  });
  return { outfile, bytes: Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { outfile, bytes } = await buildLambda(process.argv[2]);
  console.log(`${outfile}: ${(bytes / 1024).toFixed(0)} KiB`);
}
