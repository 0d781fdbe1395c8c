// `npm run bench`: the gateway against the naive bridge (plain and prepared),
// the direct driver and the HTTP floor, as ratios computed within each round
// (this machine is shared and noisy; absolute numbers drift). Servers run in
// processes pinned to core 0, the load generator to core 1, when taskset is
// there. Writes bench/results/latest.{md,json}.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { memorySource } from "../lib/config/source.ts";
import { parseNumericHost } from "../lib/hba/address.ts";
import { loadHba } from "../lib/hba/load.ts";
import { matchHba } from "../lib/hba/match.ts";
import { startCluster } from "../test/harness/postgres.ts";
import { freePort } from "../test/harness/process.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION = Number(process.env.BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const POOL_MAX = "10";
const taskset = existsSync("/usr/bin/taskset") ? ["/usr/bin/taskset", "-c"] : undefined;
const pin = (core: string, argv: string[]) => (taskset ? [...taskset, core, ...argv] : argv);


function startProcess(argv: string[], env: NodeJS.ProcessEnv, readyPattern: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`not ready: ${argv.join(" ")}\n${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (readyPattern.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    child.once("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
}

function runJson(argv: string[], env: NodeJS.ProcessEnv = {}): Record<string, number> {
  const out = execFileSync(argv[0]!, argv.slice(1), { cwd: root, env: { ...process.env, ...env }, encoding: "utf8", maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split("\n").pop()!) as Record<string, number>;
}

const node = (script: string, ...args: string[]) => [process.execPath, "--import", "tsx", script, ...args];

function load(url: string, body: unknown, headers: Record<string, string>): { rps: number; p50: number; bad: number } {
  const r = runJson(pin("1", node("bench/load.ts", url, JSON.stringify(body), JSON.stringify(headers), String(DURATION), String(CONNECTIONS))));
  return { rps: r.rps!, p50: r.p50!, bad: r.bad! };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const basic = (user: string, password = "") => "Basic " + Buffer.from(`${user}:${password}`).toString("base64");

/** Microseconds per decision when the matching line is the last of `n`. */
async function hbaDecision(n: number): Promise<number> {
  const lines: string[] = [];
  for (let i = 0; i < n - 1; i++) lines.push(`host all all 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 md5`);
  lines.push("host all all 192.0.2.0/24 trust");
  const file = loadHba("/bench", memorySource({ "/bench": lines.join("\n") }));
  const facts = { transport: "host" as const, address: parseNumericHost("192.0.2.7")!, ssl: false, database: "db", user: "u", replication: false };
  const env = { isMember: () => false };
  const iterations = Math.max(200, Math.floor(2_000_000 / n));
  for (let i = 0; i < 50; i++) await matchHba(file.rules, facts, env);
  const t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await matchHba(file.rules, facts, env);
  return Number(process.hrtime.bigint() - t) / 1000 / iterations;
}

async function main() {
  // Four gateways, two bridges and the direct driver, each with its own pool.
  const cluster = await startCluster({ settings: { max_connections: "200" } });
  await cluster.sql.unsafe(`
    create role bench login; create role benchpw login password 'bench-pw'; create role benchvf login password 'bench-vf';
    create table t (id int primary key, v text);
    insert into t select g, md5(g::text) from generate_series(1, 10000) g;
    grant select on t to bench, benchpw, benchvf;
  `);
  await cluster.writeHba("host all bench 127.0.0.1/32 trust\nhost all benchpw,benchvf 127.0.0.1/32 scram-sha-256\n", { reload: true });
  const [vf] = await cluster.sql<{ rolpassword: string }[]>`select rolpassword from pg_authid where rolname = 'benchvf'`;
  const dir = mkdtempSync(join(tmpdir(), "hbagate-bench-"));
  writeFileSync(join(dir, "pg_hba.conf"), "host all bench 127.0.0.1/32 trust\nhost all benchpw,benchvf 127.0.0.1/32 scram-sha-256\n");
  writeFileSync(join(dir, "verifiers.txt"), `"benchvf" "${vf!.rolpassword}"\n`);

  const pg = { PGHOST: "127.0.0.1", PGPORT: String(cluster.port), PGUSER: "bench", POOL_MAX };
  const gatewayEnv = (extra: Record<string, string>) => ({
    HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
    HBAGATE_UPSTREAM_HOST: "127.0.0.1",
    HBAGATE_UPSTREAM_PORT: String(cluster.port),
    HBAGATE_POOL_MAX: POOL_MAX,
    HBAGATE_STATEMENT_TIMEOUT_MS: "0",
    HBAGATE_MAX_RESPONSE_BYTES: String(256 << 20),
    ...extra,
  });
  const servers: Record<string, { url: string; child: ChildProcess }> = {};
  const launch = async (name: string, argv: (port: number) => string[], env: NodeJS.ProcessEnv, ready: RegExp) => {
    const port = await freePort();
    servers[name] = { url: `http://127.0.0.1:${port}/v1/postgres/sql`, child: await startProcess(pin("0", argv(port)), env, ready) };
  };
  for (const [name, extra] of [
    ["gateway", {}],
    ["gateway-nocache", { HBAGATE_VERIFIED_TTL_MS: "0" }],
    ["gateway-verifier", { HBAGATE_VERIFIER_FILE: join(dir, "verifiers.txt") }],
    ["gateway-verifier-nocache", { HBAGATE_VERIFIER_FILE: join(dir, "verifiers.txt"), HBAGATE_VERIFIED_TTL_MS: "0" }],
  ] as const) {
    const port = await freePort();
    servers[name] = {
      url: `http://127.0.0.1:${port}/v1/postgres/sql`,
      child: await startProcess(pin("0", [process.execPath, "bin/hbagate.js", "start"]), gatewayEnv({ ...extra, HBAGATE_PORT: String(port) }), /listening/),
    };
  }
  for (const kind of ["floor", "naive", "naive-prepared"]) await launch(kind, (p) => node("bench/servers.ts", kind, String(p)), pg, /ready/);

  const scenarios = [
    { name: "1 row", body: { query: "select $1::int as n", params: [1] }, direct: ["select $1::int as n", "[1]"] },
    { name: "100 rows", body: { query: "select id, v from t where id <= 100" }, direct: ["select id, v from t where id <= 100", "[]"] },
    { name: "10,000 rows", body: { query: "select id, v from t" }, direct: ["select id, v from t", "[]"] },
    { name: "5-statement batch", body: { queries: Array.from({ length: 5 }, (_, i) => ({ query: "select $1::int as n", params: [i] })) }, direct: undefined },
  ] as const;
  const auth = [
    { name: "trust", server: "gateway", user: basic("bench") },
    { name: "passthrough password, cache on", server: "gateway", user: basic("benchpw", "bench-pw") },
    { name: "passthrough password, cache off", server: "gateway-nocache", user: basic("benchpw", "bench-pw") },
    { name: "verifier-file SCRAM, cache on", server: "gateway-verifier", user: basic("benchvf", "bench-vf") },
    { name: "verifier-file SCRAM, cache off", server: "gateway-verifier-nocache", user: basic("benchvf", "bench-vf") },
  ] as const;

  type Row = { scenario: string; rounds: Record<string, number>[] };
  const rows: Row[] = [];
  for (const s of scenarios) rows.push({ scenario: s.name, rounds: [] });
  for (const a of auth) rows.push({ scenario: `auth: ${a.name}`, rounds: [] });

  // Every server process starts cold (JIT, tsx's transform cache, pools): warm each one first.
  process.stderr.write("warming up\n");
  for (const [name, server] of Object.entries(servers)) {
    const user = name.startsWith("gateway-verifier") ? basic("benchvf", "bench-vf") : basic("benchpw", "bench-pw");
    load(server.url, scenarios[0].body, { authorization: name === "gateway" ? basic("bench") : user });
  }

  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}\n`);
    for (const [i, s] of scenarios.entries()) {
      const r: Record<string, number> = {};
      r.gateway = load(servers.gateway!.url, s.body, { authorization: basic("bench") }).rps;
      r.naive = load(servers.naive!.url, s.body, {}).rps;
      r.naivePrepared = load(servers["naive-prepared"]!.url, s.body, {}).rps;
      if (i === 0) r.floor = load(servers.floor!.url, s.body, {}).rps;
      if (s.direct) r.direct = runJson(pin("1", node("bench/direct.ts", s.direct[0], s.direct[1], String(DURATION), String(CONNECTIONS), "false")), pg).rps!;
      rows[i]!.rounds.push(r);
    }
    for (const [j, a] of auth.entries()) {
      const r = { gateway: load(servers[a.server]!.url, scenarios[0].body, { authorization: a.user }).rps };
      rows[scenarios.length + j]!.rounds.push(r);
    }
  }

  const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${servers.gateway!.child.pid}/status`, "utf8"))?.[1] ?? 0);
  const hba = { "10": await hbaDecision(10), "1000": await hbaDecision(1000), "10000": await hbaDecision(10000) };
  const bundle = join(dir, "lambda.mjs");
  execFileSync(process.execPath, ["scripts/build-lambda.mjs", bundle], { cwd: root });
  const bundleKiB = statSync(bundle).size / 1024;
  const importMs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = Date.now();
    execFileSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify("file://" + bundle)})`], {
      env: { ...process.env, ...gatewayEnv({}), AWS_REGION: "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    });
    importMs.push(Date.now() - t);
  }

  for (const s of Object.values(servers)) s.child.kill();
  await cluster.stop();

  // Ratios within each round, then their median (min–max) over rounds.
  const ratio = (row: Row, a: string, b: string) => {
    const xs = row.rounds.filter((r) => r[a] !== undefined && r[b] !== undefined).map((r) => r[a]! / r[b]!);
    return xs.length ? `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : "—";
  };
  const rps = (row: Row, k: string) => {
    const xs = row.rounds.map((r) => r[k]).filter((x): x is number => x !== undefined);
    return xs.length ? `${Math.round(median(xs))} (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))})` : "—";
  };
  const trust = rows[scenarios.length]!;
  const lines = [
    `Run ${new Date().toISOString()}, ${ROUNDS} rounds × ${DURATION} s, ${CONNECTIONS} connections, servers ${taskset ? "pinned to core 0, load to core 1" : "unpinned"}. Medians (min–max).`,
    "",
    "| scenario | gateway req/s | ÷ naive | ÷ naive prepared | ÷ direct driver | ÷ HTTP floor |",
    "|---|---|---|---|---|---|",
    ...rows.slice(0, scenarios.length).map(
      (r) => `| ${r.scenario} | ${rps(r, "gateway")} | ${ratio(r, "gateway", "naive")} | ${ratio(r, "gateway", "naivePrepared")} | ${ratio(r, "gateway", "direct")} | ${ratio(r, "gateway", "floor")} |`,
    ),
    "",
    "| authentication (1-row statement) | gateway req/s | ÷ trust |",
    "|---|---|---|",
    ...rows.slice(scenarios.length).map((r, j) => {
      const xs = r.rounds.map((x, k) => x.gateway! / trust.rounds[k]!.gateway!);
      return `| ${r.scenario.replace("auth: ", "")} | ${rps(r, "gateway")} | ${j === 0 ? "1.00" : `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`} |`;
    }),
    "",
    `hba decision, matching line last: 10 rules ${hba["10"].toFixed(2)} µs, 1,000 rules ${hba["1000"].toFixed(1)} µs, 10,000 rules ${hba["10000"].toFixed(1)} µs (${(hba["10000"] / hba["10"]).toFixed(0)}× the 10-rule decision).`,
    `Lambda bundle ${bundleKiB.toFixed(0)} KiB; cold import ${median(importMs)} ms (median of 3, including Node's start). Gateway peak RSS after the 10,000-row runs: ${(peakKiB / 1024).toFixed(0)} MiB.`,
  ];
  const md = lines.join("\n") + "\n";
  writeFileSync(join(root, "bench/results/latest.md"), md);
  writeFileSync(join(root, "bench/results/latest.json"), JSON.stringify({ rows, hba, bundleKiB, importMs, peakKiB }, null, 2) + "\n");
  process.stdout.write(md);
}

await main();
