#!/usr/bin/env node
// Runs every test file under test/ with Node's test runner and the tsx loader.
// Node 20's --test takes no globs, so the files are listed here.
//
// Every skip, of a test or of a whole suite, is counted and listed with its
// reason after Node's own summary (whose "skipped" counts tests only; see
// skip-reporter.js). Under CI a skip fails the run: there it means something
// the tests need was not installed, and a green run would hide it.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const filter = process.argv.slice(2);

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return find(p);
    return d.name.endsWith(".test.ts") ? [p] : [];
  });
}

const files = find(join(root, "test"))
  .map((f) => relative(root, f))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
const scratch = mkdtempSync(join(tmpdir(), "hbagate-test-run-"));
const skipsFile = join(scratch, "skips.jsonl");
let r;
let skips = [];
try {
  r = spawnSync(
    process.execPath,
    [
      "--import", "tsx", "--test",
      "--test-reporter=spec", "--test-reporter-destination=stdout",
      `--test-reporter=${join(root, "test", "skip-reporter.js")}`, `--test-reporter-destination=${skipsFile}`,
      ...files,
    ],
    { cwd: root, stdio: "inherit" },
  );
  try {
    skips = readFileSync(skipsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  } catch (e) {
    // No file: the runner died before reporting anything, and its status says so.
    if (e.code !== "ENOENT") throw e;
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

// GitHub Actions, GitLab and .ci/run set CI=true; "false" and "0" mean not CI.
const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const suites = skips.filter((s) => s.suite).length;
console.log(`ℹ skips ${skips.length} (${suites} suites, ${skips.length - suites} tests; Node's "skipped" above counts tests only)`);
for (const s of skips) {
  console.log(`  ﹣ ${relative(root, s.file) || "?"} › ${s.name}${s.suite ? " (suite)" : ""}: ${s.reason}`);
}
let status = r.status ?? 1;
if (ci && skips.length > 0) {
  console.log(`✖ CI=${process.env.CI}: ${skips.length} skip(s) fail this run; install what each reason above names`);
  if (status === 0) status = 1;
}
process.exit(status);
