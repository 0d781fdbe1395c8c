#!/usr/bin/env node
// The `hbagate` command. The code is TypeScript, run through tsx's loader so no
// build step stands between `npm install` and a working command.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../functions/cli.ts");
process.exitCode = await main(process.argv.slice(2));
