// `npm run bench`: the gateway against the naive bridge (plain and prepared),
// the direct driver and the HTTP floor, as ratios computed within each round
// (this machine is shared and noisy; absolute numbers drift). Servers and
// PostgreSQL run on core 0, the load generator on core 1, when taskset is
// there; one more pass runs everything unpinned. Writes
// bench/results/latest.{md,json}.
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCluster } from "../test/harness/postgres.ts";
import { freePort } from "../test/harness/process.ts";
import { BASE_DN, slapdAvailable, startSlapd, type Slapd } from "../test/harness/slapd.ts";
import { clusterCpuMicros, cpuMicros, pinned, postgresPids, runJson, setAffinity, startProcess, startProcessMatching, TASKSET } from "./processes.ts";
import { summarizeProfile } from "./profile-summary.ts";
import { ownWork } from "./own-work.ts";
import { hbaDecision } from "./hba-decision.ts";
import { report, type Results, type Row } from "./report.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION = Number(process.env.BENCH_SECONDS ?? 3);
/** A warm-up load before each measured one, not counted. */
const WARM_SECONDS = 2;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const POOL_MAX = "10";
const SERVER_CORE = "0";
const LOAD_CORE = "1";

const node = (script: string, ...args: string[]) => [process.execPath, "--import", "tsx", script, ...args];
const basic = (user: string, password = "") => "Basic " + Buffer.from(`${user}:${password}`).toString("base64");

async function main() {
  const cluster = await startCluster({ settings: { max_connections: "300" } });
  const slapd: Slapd | undefined = slapdAvailable() ? await startSlapd() : undefined;
  // Bearer tokens: a throwaway HTTPS issuer in a process of its own (this one blocks while each load
  // runs); one token per end user, as many users as connections (each token's subject is bounded to
  // its share of the pool, HBAGATE_POOL_MAX_PER_IDENTITY: one user alone could not fill it), each
  // verified once and then cached until it expires.
  const subjects = Array.from({ length: CONNECTIONS }, (_, i) => `app-user-${i}`);
  const { child: issuerProcess, ready } = await startProcessMatching(root, node("bench/issuer.ts", JSON.stringify({ role: "benchtok", scope: "db" }), JSON.stringify(subjects)), {}, /^(\{.*\})\n/m);
  const issuer = JSON.parse(ready[1]!) as { url: string; caFile: string; tokens: string[] };
  const bearers = issuer.tokens.map((t) => `Bearer ${t}`);
  const dataDir = join(cluster.dir, "data");
  const pgPids = () => postgresPids(dataDir);
  // PostgreSQL shares the servers' core ("postgres.js direct on the same core as PostgreSQL").
  for (const pid of pgPids()) setAffinity(pid, SERVER_CORE);
  await cluster.sql.unsafe(`
    create role bench login; create role benchpw login password 'bench-pw'; create role benchvf login password 'bench-vf';
    create role test1 login; create role benchtok login;
    create table t (id int primary key, v text);
    insert into t select g, md5(g::text) from generate_series(1, 10000) g;
    grant select on t to bench, benchpw, benchvf, test1, benchtok;
    grant update on t to bench;
  `);
  await cluster.writeHba("host all bench,test1,benchtok 127.0.0.1/32 trust\nhost all benchpw,benchvf 127.0.0.1/32 scram-sha-256\n", { reload: true });
  const [vf] = await cluster.sql<{ rolpassword: string }[]>`select rolpassword from pg_authid where rolname = 'benchvf'`;
  const dir = mkdtempSync(join(tmpdir(), "hbagate-bench-"));
  const ldapLine = slapd ? `host all test1 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport=${slapd.port} ldapprefix="uid=" ldapsuffix=",${BASE_DN}"\n` : "";
  const oauthLine = `host all benchtok 127.0.0.1/32 oauth issuer=${issuer.url} scope=db delegate_ident_mapping=1\n`;
  writeFileSync(join(dir, "pg_hba.conf"), `host all bench 127.0.0.1/32 trust\nhost all benchpw,benchvf 127.0.0.1/32 scram-sha-256\n${ldapLine}${oauthLine}`);
  writeFileSync(join(dir, "verifiers.txt"), `"benchvf" "${vf!.rolpassword}"\n`);

  const pg = { PGHOST: "127.0.0.1", PGPORT: String(cluster.port), PGUSER: "bench", POOL_MAX };
  const gatewayEnv = (extra: Record<string, string>) => ({
    HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
    HBAGATE_UPSTREAM_HOST: "127.0.0.1",
    HBAGATE_UPSTREAM_PORT: String(cluster.port),
    HBAGATE_POOL_MAX: POOL_MAX,
    HBAGATE_STATEMENT_TIMEOUT_MS: "0",
    HBAGATE_MAX_RESPONSE_BYTES: String(256 << 20),
    HBAGATE_OAUTH_CA_FILE: issuer.caFile,
    ...extra,
  });
  const servers: Record<string, { url: string; child: ChildProcess }> = {};
  const launch = async (name: string, argv: (port: number) => string[], env: NodeJS.ProcessEnv, ready: RegExp) => {
    const port = await freePort();
    servers[name] = { url: `http://127.0.0.1:${port}/v1/postgres/sql`, child: await startProcess(root, pinned(SERVER_CORE, argv(port)), env, ready) };
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
      child: await startProcess(root, pinned(SERVER_CORE, [process.execPath, "bin/hbagate.js", "start"]), gatewayEnv({ ...extra, HBAGATE_PORT: String(port) }), /listening/),
    };
  }
  for (const kind of ["floor", "naive", "naive-prepared"]) await launch(kind, (p) => node("bench/servers.ts", kind, String(p)), pg, /ready/);

  const load = (server: string, body: unknown, authorization: string | readonly string[] | undefined, cores = LOAD_CORE, extra: Record<string, string> = {}) => {
    const headers = { ...extra, ...(authorization ? { authorization } : {}) };
    const run = (seconds: number) =>
      runJson(root, pinned(cores, node("bench/load.ts", servers[server]!.url, JSON.stringify(body), JSON.stringify(headers), String(seconds), String(CONNECTIONS))));
    // A server idle for a minute between its scenarios is cold: V8 drops compiled code in an idle
    // process, and the gateway's pool closes idle connections. Without this the processes the
    // round uses least (the authentication variants) were measured cold
    // and the rest warm. Two seconds: a pool opened anew, or a role's path taken again after
    // other work, served its first two seconds slowly (one-second steps of a new pool, 10
    // connections: 650, 1272, 2901, 3381 req/s; of a bearer pool: 1026, 2177, 3195), so one
    // second of warm-up left a slow second in the measured run of the methods least used.
    const warm = run(WARM_SECONDS);
    const pid = servers[server]!.child.pid!;
    const before = cpuMicros(pid);
    const pgBefore = clusterCpuMicros(dataDir);
    const r = run(DURATION);
    // The server's CPU per request over the measured run, and PostgreSQL's (the cluster's
    // processes; only this server loads it meanwhile). Requests served warming up are reported
    // apart, for a profile whose window holds both (profileLoaded).
    return {
      rps: r.rps!,
      total: r.total!,
      warmTotal: warm.total!,
      bad: r.bad!,
      cpuPerRequest: (cpuMicros(pid) - before) / r.total!,
      pgPerRequest: (clusterCpuMicros(dataDir) - pgBefore) / r.total!,
    };
  };
  // The direct driver runs where the servers do, beside PostgreSQL: it is a server's ceiling.
  const direct = (query: string, params: string, cores = SERVER_CORE) =>
    runJson(root, pinned(cores, node("bench/direct.ts", query, params, String(DURATION), String(CONNECTIONS), "true")), pg).rps!;
  const latency = (server: string, body: unknown, authorization: string | undefined) =>
    runJson(root, pinned(LOAD_CORE, node("bench/latency.ts", servers[server]!.url, JSON.stringify(body), JSON.stringify(authorization ? { authorization } : {}), String(DURATION))));

  const oneRow = { query: "select $1::int as n", params: [1] };
  const scenarios = [
    { name: "1 row", body: oneRow, direct: ["select $1::int as n", "[1]"] },
    { name: "100 rows", body: { query: "select id, v from t where id <= 100" }, direct: ["select id, v from t where id <= 100", "[]"] },
    { name: "10,000 rows", body: { query: "select id, v from t" }, direct: ["select id, v from t", "[]"] },
    { name: "5-statement batch", body: { queries: Array.from({ length: 5 }, (_, i) => ({ query: "select $1::int as n", params: [i] })) }, direct: undefined },
  ] as const;
  const auth = [
    { name: "trust", server: "gateway", user: basic("bench") },
    { name: "passthrough password, cache on", server: "gateway", user: basic("benchpw", "bench-pw") },
    { name: "passthrough password, cache off", server: "gateway-nocache", user: basic("benchpw", "bench-pw") },
    { name: "bearer token (oauth), cache on", server: "gateway", user: bearers },
    { name: "bearer token (oauth), cache off", server: "gateway-nocache", user: bearers },
    { name: "verifier-file SCRAM, cache on", server: "gateway-verifier", user: basic("benchvf", "bench-vf") },
    { name: "verifier-file SCRAM, cache off", server: "gateway-verifier-nocache", user: basic("benchvf", "bench-vf") },
    ...(slapd
      ? [
          { name: "LDAP simple bind, cache on", server: "gateway", user: basic("test1", slapd.users.test1.password) },
          { name: "LDAP simple bind, cache off", server: "gateway-nocache", user: basic("test1", slapd.users.test1.password) },
        ]
      : []),
  ];

  // The floor answers each scenario with as many bytes as the gateway's response to it.
  const responseBytes = await Promise.all(
    scenarios.map(async (s) => {
      const res = await fetch(servers.gateway!.url, { method: "POST", headers: { authorization: basic("bench"), "content-type": "application/json" }, body: JSON.stringify(s.body) });
      return String((await res.arrayBuffer()).byteLength);
    }),
  );
  const rows: Row[] = scenarios.map((s) => ({ scenario: s.name, rounds: [] }));
  const authRows: Row[] = auth.map((a) => ({ scenario: a.name, rounds: [] }));
  const c1: Row = { scenario: "c1 latency", rounds: [] };
  const transactions: Row = { scenario: "interactive transaction", rounds: [] };
  // Begin, select, update, commit over reused sessions: the gateway's WebSocket (Neon's Client) against node-postgres direct.
  const gatewayAuthority = new URL(servers.gateway!.url).host;
  const transactionsOver = (argv: string[]) => runJson(root, pinned(LOAD_CORE, node("bench/transactions.ts", ...argv, String(DURATION), String(CONNECTIONS)))).tps!;
  const unpinned: Row = { scenario: "1 row, unpinned", rounds: [] };

  // Every server process starts cold (JIT, tsx's transform cache, pools): warm each one first.
  process.stderr.write("warming up\n");
  for (const name of Object.keys(servers)) {
    const user = name.startsWith("gateway-verifier") ? basic("benchvf", "bench-vf") : name === "gateway-nocache" ? basic("benchpw", "bench-pw") : basic("bench");
    load(name, oneRow, user);
  }

  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}\n`);
    for (const [i, s] of scenarios.entries()) {
      const r: Record<string, number> = {};
      if (i === 0) {
        const g = load("gateway", s.body, basic("bench"));
        const b = load("naive-prepared", s.body, undefined);
        Object.assign(r, { gateway: g.rps, naivePrepared: b.rps, gatewayCpu: g.cpuPerRequest, naivePreparedCpu: b.cpuPerRequest, bad: g.bad });
      } else {
        const g = load("gateway", s.body, basic("bench"));
        Object.assign(r, { gateway: g.rps, bad: g.bad, naivePrepared: load("naive-prepared", s.body, undefined).rps });
      }
      r.floor = load("floor", s.body, undefined, LOAD_CORE, { "x-floor-bytes": responseBytes[i]! }).rps;
      r.naive = load("naive", s.body, undefined).rps;
      if (s.direct) r.direct = direct(s.direct[0], s.direct[1]);
      rows[i]!.rounds.push(r);
    }
    // Each method against trust on the same process, in the order trust, method, method, trust
    // (ABBA): neighbouring runs drift less than whole rounds, and the order cancels out.
    for (const [j, a] of auth.entries()) {
      if (j === 0) {
        const t = load("gateway", oneRow, basic("bench"));
        authRows[0]!.rounds.push({ gateway: t.rps, trust: t.rps, bad: t.bad, cpu: t.cpuPerRequest, pg: t.pgPerRequest, trustCpu: t.cpuPerRequest, trustPg: t.pgPerRequest });
        continue;
      }
      const t1 = load("gateway", oneRow, basic("bench"));
      const m1 = load(a.server, oneRow, a.user);
      const m2 = load(a.server, oneRow, a.user);
      const t2 = load("gateway", oneRow, basic("bench"));
      // Beside throughput, what each request cost the core they share (the gateway's CPU and
      // PostgreSQL's): steadier between rounds than requests per second on this machine.
      const mean = (x: number, y: number) => (x + y) / 2;
      authRows[j]!.rounds.push({
        gateway: mean(m1.rps, m2.rps),
        trust: mean(t1.rps, t2.rps),
        bad: m1.bad + m2.bad,
        cpu: mean(m1.cpuPerRequest, m2.cpuPerRequest),
        pg: mean(m1.pgPerRequest, m2.pgPerRequest),
        trustCpu: mean(t1.cpuPerRequest, t2.cpuPerRequest),
        trustPg: mean(t1.pgPerRequest, t2.pgPerRequest),
      });
    }
    transactions.rounds.push({
      gateway: transactionsOver(["ws", gatewayAuthority, "bench", "unused"]),
      direct: transactionsOver(["direct", "127.0.0.1", String(cluster.port), "bench"]),
    });
    const lg = latency("gateway", oneRow, basic("bench"));
    const lb = latency("naive-prepared", oneRow, undefined);
    c1.rounds.push({ gatewayP50: lg.p50!, naivePreparedP50: lb.p50!, gatewayP99: lg.p99!, naivePreparedP99: lb.p99! });
  }

  // The same 1-row comparison with nothing pinned: servers, PostgreSQL and load free to use both cores.
  if (TASKSET) {
    process.stderr.write("unpinned\n");
    for (const s of Object.values(servers)) setAffinity(s.child.pid!, "0,1");
    for (const pid of pgPids()) setAffinity(pid, "0,1");
    for (let round = 1; round <= ROUNDS; round++) {
      unpinned.rounds.push({
        gateway: load("gateway", oneRow, basic("bench"), "0,1").rps,
        naivePrepared: load("naive-prepared", oneRow, undefined, "0,1").rps,
        direct: direct("select $1::int as n", "[1]", "0,1"),
      });
    }
    for (const s of Object.values(servers)) setAffinity(s.child.pid!, SERVER_CORE);
    for (const pid of pgPids()) setAffinity(pid, SERVER_CORE);
  }

  const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${servers.gateway!.child.pid}/status`, "utf8"))?.[1] ?? 0);
  for (const s of Object.values(servers)) s.child.kill();

  // CPU profiles of the 1-row case, the gateway's and the prepared bridge's, taken alike:
  // where the gateway's time goes, and where it goes beyond the bridge's.
  process.stderr.write("profiling\n");
  const profileLoaded = async (name: string, start: (profileDir: string, port: number) => { argv: string[]; env: NodeJS.ProcessEnv }, authorization: string | undefined) => {
    const profileDir = join(dir, `profile-${name}`);
    const port = await freePort();
    const { argv, env } = start(profileDir, port);
    const spawnedAt = Date.now();
    const child = await startProcess(root, pinned(SERVER_CORE, argv), env, /listening|ready/);
    servers[name] = { url: `http://127.0.0.1:${port}/v1/postgres/sql`, child };
    load(name, oneRow, authorization);
    const window = { fromMs: Date.now() - spawnedAt, toMs: 0 };
    // The window holds each load's warm-up as well as its measured run: both are counted.
    let requests = 0;
    for (let i = 0; i < 3; i++) {
      const r = load(name, oneRow, authorization);
      requests += r.warmTotal + r.total;
    }
    window.toMs = Date.now() - spawnedAt;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    await exited;
    const file = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile")).sort()[0];
    return file ? summarizeProfile(join(profileDir, file), window, requests) : [];
  };
  const profile = await profileLoaded(
    "profiled-gateway",
    (d, port) => ({ argv: [process.execPath, "--cpu-prof", `--cpu-prof-dir=${d}`, "bin/hbagate.js", "start"], env: gatewayEnv({ HBAGATE_PORT: String(port) }) }),
    basic("bench"),
  );
  const bridgeProfile = await profileLoaded(
    "profiled-bridge",
    (d, port) => ({ argv: [process.execPath, "--cpu-prof", `--cpu-prof-dir=${d}`, "--import", "tsx", "bench/servers.ts", "naive-prepared", String(port)], env: pg }),
    undefined,
  );

  const own = await ownWork();
  const hba = { "10": await hbaDecision(10), "1000": await hbaDecision(1000), "10000": await hbaDecision(10000) };
  const bundle = join(dir, "lambda.mjs");
  execFileSync(process.execPath, ["scripts/build-lambda.mjs", bundle], { cwd: root });
  const bundleKiB = statSync(bundle).size / 1024;
  const importMs: number[] = [];
  // The gateway's settings as Lambda takes them: its own response limit (the benchmark's 256 MiB is refused there).
  const { HBAGATE_MAX_RESPONSE_BYTES: _unused, ...lambdaEnv } = gatewayEnv({});
  for (let i = 0; i < 3; i++) {
    const t = Date.now();
    execFileSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify("file://" + bundle)})`], {
      env: { ...process.env, ...lambdaEnv, AWS_REGION: "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    });
    importMs.push(Date.now() - t);
  }

  await slapd?.stop();
  issuerProcess.kill();
  await cluster.stop();

  const results: Results = {
    date: new Date().toISOString(),
    rounds: ROUNDS,
    seconds: DURATION,
    connections: CONNECTIONS,
    pinned: TASKSET !== undefined,
    scenarios: rows,
    auth: authRows,
    c1,
    transactions,
    unpinned,
    profile,
    bridgeProfile,
    own,
    hba,
    bundleKiB,
    importMs,
    peakKiB,
    ldap: slapd !== undefined,
  };
  const md = report(results);
  writeFileSync(join(root, "bench/results/latest.md"), md);
  writeFileSync(join(root, "bench/results/latest.json"), JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(md);
}

if (process.argv.includes("--report-only")) {
  // Rewrite the markdown from the last run's JSON (after a change to the report's wording).
  const results = JSON.parse(readFileSync(join(root, "bench/results/latest.json"), "utf8")) as Results;
  writeFileSync(join(root, "bench/results/latest.md"), report(results));
  process.stdout.write(report(results));
} else {
  await main();
}
