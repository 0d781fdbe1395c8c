// `node --import tsx bench/driver-costs.ts`: what one pooled request costs
// at the driver, beside PostgreSQL on one core (as `npm run bench` pins the
// servers): the statement alone, and the statement with the session reset
// that isolates callers (lib/upstream/session-reset.ts), each through
// postgres.js and through a bare protocol client written on
// lib/wire/protocol.ts. The bare client's reset is also tried with its
// statements prepared once and sent behind one Sync. Ten connections, each
// running its requests back to back; medians of the rounds, with Node's own
// CPU per request. For planning a leaner request path: the README quotes
// `npm run bench`, not this.
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import postgres from "postgres";
import { startCluster } from "../test/harness/postgres.ts";
import { postgresPids, setAffinity } from "./processes.ts";
import { RESET_CHECK, RESET_COMMANDS } from "../lib/upstream/session-reset.ts";
import { MessageReader, MessageWriter, PROTOCOL_3_0 } from "../lib/wire/protocol.ts";
import { openServerStream } from "../lib/upstream/session-connection.ts";
import { WireConnection } from "../lib/upstream/wire-connection.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MS = Number(process.env.BENCH_SECONDS ?? 2) * 1000;
const CONNECTIONS = 10;
const STATEMENT = "select $1::int as n";
// The reset as one simple query (as the request path sent it through postgres.js).
const RESET_STATEMENTS = [...RESET_COMMANDS, RESET_CHECK];
const RESET = RESET_STATEMENTS.join("; ");
/** The reset's last statement without its look at pg_prepared_statements: what that look costs. */
const CHECK_WITHOUT_PREPARED = "SELECT pg_catalog.pg_advisory_unlock_all()";

const cluster = await startCluster({ settings: { max_connections: "100" } });
for (const pid of postgresPids(join(cluster.dir, "data"))) setAffinity(pid, "0");
setAffinity(process.pid, "0");
await cluster.sql.unsafe("create role bench login");
await cluster.writeHba("host all bench 127.0.0.1/32 trust\n", { reload: true });

const message = (type: string, build: (w: MessageWriter) => MessageWriter = (w) => w) => build(new MessageWriter()).finish(type);
const sync = message("S");
const parse = (name: string, text: string) => message("P", (w) => w.cstring(name).cstring(text).int16(0));
const bindExecute = (name: string, params: readonly string[]) =>
  Buffer.concat([
    message("B", (w) => {
      w.cstring("").cstring(name).int16(0).int16(params.length);
      for (const p of params) w.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
      return w.int16(0);
    }),
    message("E", (w) => w.cstring("").int32(0)),
  ]);

/** A protocol client with nothing but what this measures: each exchange ends after a number of ReadyForQuery. */
class Bare {
  private readonly reader = new MessageReader(1 << 24);
  private waiting: { left: number; done: () => void; fail: (e: Error) => void } | undefined;
  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => this.data(chunk));
  }

  static async open(): Promise<Bare> {
    const socket = connect(cluster.port, "127.0.0.1");
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const bare = new Bare(socket);
    await bare.exchange(new MessageWriter().int32(PROTOCOL_3_0).cstring("user").cstring("bench").cstring("database").cstring("postgres").bytes(new Uint8Array(1)).finish(), 1);
    await bare.exchange(Buffer.concat([parse("statement", STATEMENT), ...RESET_STATEMENTS.map((t, i) => parse(`reset${i}`, t)), parse("check", CHECK_WITHOUT_PREPARED), parse("", RESET_CHECK), sync]), 1);
    return bare;
  }

  exchange(bytes: Uint8Array, readies: number): Promise<void> {
    return new Promise((done, fail) => {
      this.waiting = { left: readies, done, fail };
      this.socket.write(bytes);
    });
  }

  private data(chunk: Buffer): void {
    this.reader.push(chunk);
    for (let m = this.reader.next(); m; m = this.reader.next()) {
      const w = this.waiting!;
      if (m.type === 0x45) w.fail(new Error(Buffer.from(m.body).toString("latin1")));
      if (m.type === 0x5a && --w.left === 0) {
        this.waiting = undefined;
        w.done();
      }
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

const statement = bindExecute("statement", ["1"]);
const resetQuery = message("Q", (w) => w.cstring(RESET));
const resetPrepared = Buffer.concat([...RESET_STATEMENTS.map((_, i) => bindExecute(`reset${i}`, [])), sync]);
const resetPreparedNoLook = Buffer.concat([...RESET_STATEMENTS.slice(0, -1).map((_, i) => bindExecute(`reset${i}`, [])), bindExecute("check", []), sync]);
// The reset as the gateway sends it: the commands prepared, the check the unnamed statement (which
// SQL cannot replace), parsed again only after a one-off statement took its place.
const commands = RESET_COMMANDS.map((_, j) => bindExecute(`reset${j}`, []));
const checkParsedEachTime = Buffer.concat([...commands, parse("", RESET_CHECK), bindExecute("", []), sync]);
const checkUnnamed = Buffer.concat([...commands, bindExecute("", []), sync]);
const bares = await Promise.all(Array.from({ length: CONNECTIONS }, () => Bare.open()));
const drivers = Array.from({ length: CONNECTIONS }, () => postgres({ host: "127.0.0.1", port: cluster.port, username: "bench", database: "postgres", max: 1 }));
const wires = await Promise.all(
  Array.from({ length: CONNECTIONS }, async () =>
    new WireConnection(await openServerStream({ host: "127.0.0.1", port: cluster.port, connectTimeout: 5 } as Parameters<typeof openServerStream>[0], { database: "postgres", user: "bench", password: undefined, parameters: [] })),
  ),
);
const ignore = () => {};
const variants: Record<string, (i: number) => Promise<unknown>> = {
  "postgres.js, statement": (i) => drivers[i]!.unsafe(STATEMENT, [1], { prepare: true }),
  "postgres.js, statement + reset": (i) => Promise.all([drivers[i]!.unsafe(STATEMENT, [1], { prepare: true }), drivers[i]!.unsafe(RESET, [], { simple: true } as postgres.UnsafeQueryOptions)]),
  "bare, statement": (i) => bares[i]!.exchange(Buffer.concat([statement, sync]), 1),
  "bare, statement + reset": (i) => bares[i]!.exchange(Buffer.concat([statement, sync, resetQuery]), 2),
  "bare, statement + prepared reset": (i) => bares[i]!.exchange(Buffer.concat([statement, sync, resetPrepared]), 2),
  "bare, statement + prepared reset, no look at pg_prepared_statements": (i) => bares[i]!.exchange(Buffer.concat([statement, sync, resetPreparedNoLook]), 2),
  "bare, statement + prepared commands + the check as the unnamed statement, parsed each time": (i) => bares[i]!.exchange(Buffer.concat([statement, sync, checkParsedEachTime]), 2),
  "bare, statement + prepared commands + the check as the unnamed statement, parsed once": (i) => bares[i]!.exchange(Buffer.concat([statement, sync, checkUnnamed]), 2),
  "WireConnection (lib/upstream/wire-connection.ts), statement + reset": (i) => Promise.all([wires[i]!.run({ text: STATEMENT, params: ["1"], prepare: true, row: ignore }), wires[i]!.reset()]),
};

async function run(name: string, ms: number): Promise<{ rps: number; cpu: number }> {
  const f = variants[name]!;
  let n = 0;
  const end = Date.now() + ms;
  const before = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, i) => {
      while (Date.now() < end) {
        await f(i);
        n++;
      }
    }),
  );
  const cpu = process.cpuUsage(before);
  return { rps: n / (ms / 1000), cpu: (cpu.user + cpu.system) / n };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seen: Record<string, { rps: number[]; cpu: number[]; ratio: number[] }> = {};
// BENCH_ONLY=a,b: only the variants whose names contain one of these (and in that order).
const only = process.env.BENCH_ONLY?.split(",");
const chosen = only ? only.flatMap((o) => Object.keys(variants).filter((k) => k.includes(o))) : Object.keys(variants);
for (const name of chosen) await run(name, 300);
for (let round = 0; round < ROUNDS; round++) {
  let base = 0;
  for (const name of chosen) {
    const r = await run(name, MS);
    if (name === "postgres.js, statement") base = r.rps;
    const s = (seen[name] ??= { rps: [], cpu: [], ratio: [] });
    s.rps.push(r.rps);
    s.cpu.push(r.cpu);
    s.ratio.push(r.rps / base);
  }
}
console.log(`| per request, ${CONNECTIONS} connections, Node and PostgreSQL on one core | requests/s | ÷ postgres.js, statement | Node CPU µs |`);
console.log("|---|---|---|---|");
for (const [name, s] of Object.entries(seen)) console.log(`| ${name} | ${median(s.rps).toFixed(0)} | ${median(s.ratio).toFixed(2)} | ${median(s.cpu).toFixed(0)} |`);
for (const b of bares) b.close();
for (const w of wires) w.end();
await Promise.all(drivers.map((d) => d.end()));
await cluster.stop();
