// Every example in README.md runs here, as a newcomer would run it, so the
// README cannot drift from the product. Each fenced block says what it is in
// its info string (GitHub shows only the first word):
//
//   ```sh example=GROUP     shell lines; a group's blocks run in README order as one bash
//                           script in a fresh directory (examples/ and test/ linked in). `npm start` starts the gateway in
//                           the background (stopping one started before) and waits for its
//                           "listening" line; every `# {…}`, `# […]` or `# → text` line is
//                           output that must appear, in order (a line ending in … is a prefix).
//   ```js file=PATH         the file's text, verbatim (the shell examples run the file).
//   ```conf check=hba       pg_hba.conf lines: `hbagate hba check` must accept them.
//   ```sh commands          the two commands: package.json must have them and .ci/run run npm test.
//   ```text                 a diagram, not an example.
//
// What a block cannot know is substituted: 127.0.0.1:8080 becomes the gateway's
// address, port 5432 the throwaway PostgreSQL's, 12345 the gateway's PID.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";
import { freePort } from "../harness/process.ts";
import { run } from "../harness/spawn.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface Block {
  readonly lang: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

/** The fenced blocks of a markdown text, with their info strings' key=value attributes. */
export function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const attrs: Record<string, string> = {};
    for (const m of open[2]!.matchAll(/(\w[\w-]*)(?:=("[^"]*"|\S+))?/g)) attrs[m[1]!] = (m[2] ?? "").replace(/^"|"$/g, "");
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    assert.ok(i < lines.length, `README.md:${start + 1}: a fence that never closes`);
    blocks.push({ lang: open[1]!, attrs, body: body.join("\n") + "\n", line: start + 1 });
  }
  return blocks;
}

/** The outputs a block promises: `# {…}`, `# […]` and `# → text` lines. */
export function promisedOutputs(body: string): string[] {
  return body
    .split("\n")
    .map((l) => /^\s*# (?:→ (.*)|([{[].*))$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => m[1] ?? m[2]!);
}

/** Whether every promised line appears in `output`, in order; the first one missing otherwise. */
export function missingOutput(promised: readonly string[], output: string): string | undefined {
  const lines = output.split("\n");
  let at = 0;
  for (const want of promised) {
    const prefix = want.endsWith("…") ? want.slice(0, -1) : undefined;
    const found = lines.findIndex((l, i) => i >= at && (prefix !== undefined ? l.startsWith(prefix) : l === want));
    if (found < 0) return want;
    at = found + 1;
  }
  return undefined;
}

const README = readFileSync(join(root, "README.md"), "utf8");
const blocks = fencedBlocks(README);
const groups = new Map<string, Block[]>();
for (const b of blocks) if (b.attrs.example) groups.set(b.attrs.example, [...(groups.get(b.attrs.example) ?? []), b]);

/** The shell around a group: `npm start` in the background, stopped at the end. */
const PRELUDE = `set -euo pipefail
GWLOG="$PWD/hbagate.log"
npm() {
  if [ "$1" != start ]; then command npm "$@"; return; fi
  if [ -n "\${GWPID:-}" ]; then kill "$GWPID"; wait "$GWPID" || true; fi
  : > "$GWLOG"
  node "$HBAGATE_ROOT/bin/hbagate.js" start 2>>"$GWLOG" &
  GWPID=$!
  until grep -q '"msg":"listening"' "$GWLOG"; do
    if ! kill -0 "$GWPID" 2>/dev/null; then echo "the gateway did not start:" >&2; cat "$GWLOG" >&2; return 1; fi
    sleep 0.1
  done
  GWPIDS="$(grep -o '"pid":[0-9]*' "$GWLOG" | head -1 | cut -d: -f2)"
}
# curl's answers end without a newline: a terminal's prompt moves on, a script's output would run together.
curl() { command curl "$@"; local rc=$?; echo; return $rc; }
trap 'if [ -n "\${GWPID:-}" ]; then kill "$GWPID" 2>/dev/null || true; wait "$GWPID" 2>/dev/null || true; fi' EXIT
`;

async function runGroup(name: string, env: Record<string, string>, port: number, upstreamPort?: number): Promise<void> {
  const group = groups.get(name);
  assert.ok(group, `README.md has no example=${name} blocks`);
  const dir = mkdtempSync(join(tmpdir(), `hbagate-readme-${name}-`));
  // Run where `npm start` runs, the checkout's root, as far as the examples' paths go.
  for (const d of ["examples", "test"]) symlinkSync(join(root, d), join(dir, d));
  // The PID appears only once the gateway has started: substituted by the shell, from its log.
  const substitute = (text: string) => {
    let t = text.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`).replaceAll(/\bkill -(\w+) 12345\b/g, 'kill -$1 "$GWPIDS"');
    if (upstreamPort !== undefined) t = t.replaceAll(/\b5432\b/g, String(upstreamPort));
    return t;
  };
  const script = PRELUDE + (name === "quickstart" ? "npm start\n" : "") + group.map((b) => `# README.md:${b.line}\n${substitute(b.body)}`).join("");
  writeFileSync(join(dir, "example.sh"), script);
  const result = await run("bash", [join(dir, "example.sh")], {
    cwd: dir,
    env: { ...process.env, HBAGATE_ROOT: root, HBAGATE_PORT: String(port), ...env },
    timeoutMs: 120_000,
  });
  const log = () => {
    try {
      return readFileSync(join(dir, "hbagate.log"), "utf8");
    } catch {
      return "";
    }
  };
  assert.equal(result.code, 0, `example=${name} failed (exit ${result.code}):\n${result.output}\ngateway log:\n${log()}`);
  const promised = group.flatMap((b) => promisedOutputs(b.body));
  const missing = missingOutput(promised, result.stdout);
  assert.equal(missing, undefined, `example=${name}: the README promises this output, which did not come:\n${missing}\nstdout:\n${result.stdout}\ngateway log:\n${log()}`);
}

describe("README.md examples", () => {
  test("every fenced block says what it is, and every file it shows is that file", () => {
    for (const b of blocks) {
      const kinds = ["example", "file", "check", "commands"].filter((k) => k in b.attrs);
      assert.ok(kinds.length === 1 || (b.lang === "text" && kinds.length === 0), `README.md:${b.line}: a fenced block must be one of example=, file=, check=, commands (or a text diagram): ${JSON.stringify(b)}`);
      if (b.attrs.file) assert.equal(b.body, readFileSync(join(root, b.attrs.file), "utf8"), `README.md:${b.line}: the block differs from ${b.attrs.file}`);
    }
  });

  test("the two commands are the first lines, package.json has them, and .ci/run runs the README's test command", () => {
    const first = blocks[0]!;
    assert.ok("commands" in first.attrs, "the README opens with the commands block");
    assert.match(first.body, /^npm install && npm start\s+#.*\nnpm test\s+#.*\n$/);
    const scripts = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts;
    assert.ok(scripts.start && scripts.test);
    assert.match(readFileSync(join(root, ".ci/run"), "utf8"), /^npm test$/m);
  });

  test("pg_hba.conf blocks are accepted by hbagate hba check", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hbagate-readme-hba-"));
    const checked = blocks.filter((b) => b.attrs.check === "hba");
    assert.ok(checked.length > 0);
    for (const b of checked) {
      const file = join(dir, `hba-${b.line}.conf`);
      writeFileSync(file, b.body);
      const r = await run(process.execPath, [join(root, "bin/hbagate.js"), "hba", "check", file], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `README.md:${b.line}: ${r.output}`);
    }
  });

  test("the quick start: npm start, then the curl, answers what the README shows", async () => {
    await runGroup("quickstart", {}, await freePort("127.0.0.1"));
  });

  describe("with your own PostgreSQL", { skip: flavorMissing("debian") }, () => {
    let cluster: Cluster;
    before(async () => {
      cluster = await startCluster();
      // What the README asks of the upstream: passwords from the gateway's address, never trust.
      await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    });
    after(async () => {
      await cluster?.stop();
    });

    test("scram with curl -u, a verifier file from pg_authid, Neon's client, a reload and a diagnosed failure", async () => {
      // psql as the superuser, over the server's socket (as `sudo -u postgres psql` would be).
      await runGroup("own-postgres", { PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "postgres" }, await freePort("127.0.0.1"), cluster.port);
    });
  });
});


describe("the pages the README links to", () => {
  const pages = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

  test("every relative link, from the README and between docs/ pages, names a file that exists", () => {
    for (const page of pages) {
      for (const m of readFileSync(join(root, page), "utf8").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        assert.ok(existsSync(join(root, dirname(page), target)), `${page}: a link to ${target}, which does not exist`);
      }
    }
  });

  test("every docs/ page is linked from the README", () => {
    for (const page of pages.slice(1)) assert.ok(README.includes(`](${page})`), `README.md does not link ${page}`);
  });

  test("docs/benchmarks.md quotes the latest benchmark report whole", () => {
    const latest = readFileSync(join(root, "bench/results/latest.md"), "utf8").trim();
    assert.ok(readFileSync(join(root, "docs/benchmarks.md"), "utf8").includes(latest), "docs/benchmarks.md differs from bench/results/latest.md: paste the report again");
  });

  test("every test file docs/guarantees.md cites as proof exists", () => {
    const cited = [...readFileSync(join(root, "docs/guarantees.md"), "utf8").matchAll(/`(test\/[\w./-]+\.test\.ts)`/g)].map((m) => m[1]!);
    assert.ok(cited.length > 20);
    for (const file of cited) assert.ok(existsSync(join(root, file)), `docs/guarantees.md cites ${file}, which does not exist`);
  });
});
