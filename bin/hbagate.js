#!/usr/bin/env node
// The `hbagate` command: the compiled gateway (dist/cli.mjs, built by
// `npm install`; see scripts/build.mjs).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../dist/cli.mjs", import.meta.url));
if (!existsSync(cli)) {
  console.error("hbagate: dist/cli.mjs is missing: run `npm install` (or `node scripts/build.mjs`) to build it");
  process.exit(1);
}
const { main } = await import(cli);
process.exitCode = await main(process.argv.slice(2));
