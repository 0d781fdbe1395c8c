// `node --import tsx bench/quick.ts DIR [DIR ...]`: a short A/B of gateway
// builds (each DIR a checkout with a built dist/) against the prepared naive
// bridge, 1-row trust and bearer, pinned as `npm run bench` pins. For
// development only: ratios within each round, medians printed; the README
// quotes `npm run bench`, never this.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCluster } from "../test/harness/postgres.ts";
import { freePort } from "../test/harness/process.ts";
import { clusterCpuMicros, cpuMicros, pinned, postgresPids, runJson, setAffinity, startProcess, startProcessMatching } from "./processes.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const dirs = process.argv.slice(2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION = Number(process.env.BENCH_SECONDS ?? 3);
const node = (script: string, ...args: string[]) => [process.execPath, "--import", "tsx", script, ...args];
const basic = (user: string) => "Basic " + Buffer.from(`${user}:`).toString("base64");

const cluster = await startCluster({ settings: { max_connections: "300" } });
const subjects = Array.from({ length: 10 }, (_, i) => `app-user-${i}`);
const { child: issuerProcess, ready } = await startProcessMatching(root, node("bench/issuer.ts", JSON.stringify({ role: "benchtok", scope: "db" }), JSON.stringify(subjects)), {}, /^(\{.*\})\n/m);
const issuer = JSON.parse(ready[1]!) as { url: string; caFile: string; tokens: string[] };
for (const pid of postgresPids(join(cluster.dir, "data"))) setAffinity(pid, "0");
await cluster.sql.unsafe(`create role bench login; create role benchtok login;`);
await cluster.writeHba("host all bench,benchtok 127.0.0.1/32 trust\n", { reload: true });
const dir = mkdtempSync(join(tmpdir(), "hbagate-quick-"));
writeFileSync(join(dir, "pg_hba.conf"), `host all bench 127.0.0.1/32 trust\nhost all benchtok 127.0.0.1/32 oauth issuer=${issuer.url} scope=db delegate_ident_mapping=1\n`);
const servers: { name: string; url: string; child: ChildProcess }[] = [];
for (const [i, spec] of dirs.entries()) {
  // DIR or DIR?NAME=VALUE&…: a build, and settings of its own.
  const [d, query] = spec.split("?") as [string, string | undefined];
  const port = await freePort();
  const env = {
    HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"), HBAGATE_UPSTREAM_HOST: "127.0.0.1", HBAGATE_UPSTREAM_PORT: String(cluster.port),
    HBAGATE_POOL_MAX: "10", HBAGATE_STATEMENT_TIMEOUT_MS: "0", HBAGATE_OAUTH_CA_FILE: issuer.caFile, HBAGATE_PORT: String(port),
    ...Object.fromEntries(new URLSearchParams(query ?? "")),
  };
  servers.push({ name: `g${i}`, url: `http://127.0.0.1:${port}/v1/postgres/sql`, child: await startProcess(d, pinned("0", [process.execPath, "bin/hbagate.js", "start"]), env, /listening/) });
}
{
  const port = await freePort();
  servers.push({ name: "bridge", url: `http://127.0.0.1:${port}/v1/postgres/sql`, child: await startProcess(root, pinned("0", node("bench/servers.ts", "naive-prepared", String(port))), { PGHOST: "127.0.0.1", PGPORT: String(cluster.port), PGUSER: "bench", POOL_MAX: "10" }, /ready/) });
}
const body = { query: "select $1::int as n", params: [1] };
const load = (s: (typeof servers)[number], authorization: string | string[] | undefined, seconds = DURATION) => {
  const headers = authorization ? { authorization } : {};
  const before = cpuMicros(s.child.pid!);
  const pgBefore = clusterCpuMicros(join(cluster.dir, "data"));
  const r = runJson(root, pinned("1", node("bench/load.ts", s.url, JSON.stringify(body), JSON.stringify(headers), String(seconds), "10")));
  const pg = clusterCpuMicros(join(cluster.dir, "data")) - pgBefore;
  return { rps: r.rps!, cpu: (cpuMicros(s.child.pid!) - before) / r.total!, pg: pg / r.total!, bad: r.bad! };
};
const bearers = issuer.tokens.map((t) => `Bearer ${t}`);
for (const s of servers) load(s, s.name === "bridge" ? undefined : basic("bench"), 2);
for (const s of servers) if (s.name !== "bridge") load(s, bearers, 1);
const results: Record<string, number[]> = {};
const push = (k: string, v: number) => (results[k] ??= []).push(v);
for (let round = 0; round < ROUNDS; round++) {
  const b = load(servers.at(-1)!, undefined);
  if (b.bad) console.error(`bridge: ${b.bad} bad`);
  push("bridge rps", b.rps);
  push("bridge cpu µs", b.cpu);
  push("bridge postgres µs", b.pg);
  for (const s of servers.slice(0, -1)) {
    const t = load(s, basic("bench"));
    const o = load(s, bearers);
    if (t.bad || o.bad) console.error(`${s.name}: ${t.bad} ${o.bad} bad`);
    push(`${s.name} trust rps`, t.rps);
    push(`${s.name} trust ÷ bridge`, t.rps / b.rps);
    push(`${s.name} trust cpu µs`, t.cpu);
    push(`${s.name} trust postgres µs`, t.pg);
    push(`${s.name} bearer ÷ trust`, o.rps / t.rps);
    push(`${s.name} bearer cpu µs`, o.cpu);
    push(`${s.name} bearer postgres µs`, o.pg);
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
// On a shared machine the least CPU per request a round measured is the steadiest figure to compare builds by.
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(24)} median ${median(v).toFixed(2)}  min ${Math.min(...v).toFixed(2)}  (${v.map((x) => x.toFixed(2)).join(", ")})`);
for (const s of servers) s.child.kill();
issuerProcess.kill();
await cluster.stop();
