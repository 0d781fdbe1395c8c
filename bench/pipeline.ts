// `node --import tsx bench/pipeline.ts [SECONDS] [floor|bearer]`, or compiled first
// (`npx esbuild bench/pipeline.ts --bundle --platform=node --format=esm
// --packages=external --outfile=bench/.pipeline.mjs`, as production runs):
// the gateway's whole request path in one process, with
// neither sockets nor PostgreSQL. The assembled Hono app answers Requests given
// to its fetch(); its pool connections reach a server in this file that answers
// every message at once, with what PostgreSQL would (statements prepared,
// bound, described, executed; the session reset's check counting the
// statements named). What is left is the gateway's own CPU per request, free of
// the shared machine's noise in I/O and of PostgreSQL's share of the core: for
// profiling (`node --cpu-prof --import tsx bench/pipeline.ts`) and for comparing
// two versions of the request path. The README quotes `npm run bench`, never this.
import { mkdtempSync, writeFileSync } from "node:fs";
import { Hono } from "hono";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSettings } from "../lib/config/settings.ts";
import { assembleGateway } from "../lib/gateway/assemble.ts";
import { nodePlatform } from "../lib/node/platform.ts";
import { Pools } from "../lib/upstream/pools.ts";
import type { ServerStream } from "../lib/upstream/session-connection.ts";
import { RESET_CHECK, RESET_COMMANDS } from "../lib/upstream/session-reset.ts";
import { startIssuer } from "../test/harness/oauth-issuer.ts";
import { cstringAt, int16At, int32At, MessageReader, MessageWriter } from "../lib/wire/protocol.ts";

const SECONDS = Number(process.argv[2] ?? 5);
const CONCURRENCY = 10;
const utf8 = new TextDecoder();
const message = (type: string, build: (w: MessageWriter) => MessageWriter = (w) => w) => build(new MessageWriter()).finish(type);
const PARSE_COMPLETE = message("1");
const BIND_COMPLETE = message("2");
const CLOSE_COMPLETE = message("3");
const NO_DATA = message("n");
const READY = message("Z", (w) => w.bytes(Uint8Array.of(0x49)));
// The server's answers are made once each and kept: what is measured is the gateway, not this file.
const memo = <A,>(make: (a: A) => Uint8Array) => {
  const made = new Map<string, Uint8Array>();
  return (a: A) => {
    const key = JSON.stringify(a);
    let m = made.get(key);
    if (!m) made.set(key, (m = make(a)));
    return m;
  };
};
const complete = memo((tag: string) => message("C", (w) => w.cstring(tag)));
const dataRow = memo((values: readonly (string | null)[]) =>
  message("D", (w) => {
    w.int16(values.length);
    for (const v of values) {
      if (v === null) w.int32(-1);
      else {
        const b = new TextEncoder().encode(v);
        w.int32(b.length).bytes(b);
      }
    }
    return w;
  }),
);
const ONE_INT_COLUMN = message("T", (w) => w.int16(1).cstring("n").int32(0).int16(0).int32(23).int16(4).int32(-1).int16(0));
const RESET_TAGS = new Map<string, string>([["RESET ALL", "RESET"], ["SET SESSION AUTHORIZATION DEFAULT", "SET"], ["CLOSE ALL", "CLOSE CURSOR ALL"], ["UNLISTEN *", "UNLISTEN"], ["DISCARD TEMP", "DISCARD TEMP"], ["DISCARD SEQUENCES", "DISCARD SEQUENCES"]]);
for (const c of RESET_COMMANDS) if (!RESET_TAGS.has(c)) throw new Error(`pipeline.ts does not know the reset command ${c}`);

/** A server session that answers as PostgreSQL would, at once (on the next turn of the event loop, as a socket's data would come). */
function instantServer(): ServerStream {
  const reader = new MessageReader(1 << 30, { copy: false });
  const statements = new Map<string, string>();
  let portal: { text: string; params: (string | null)[] } = { text: "", params: [] };
  let receive: (chunk: Uint8Array) => void = () => {};
  const cstring = (b: Uint8Array, at: number): [string, number] => {
    const s = cstringAt(b, at);
    if (!s) throw new Error("pipeline.ts: a string without its terminator");
    return [s.text, s.next];
  };
  const answer = (out: Uint8Array[]) => {
    for (let m = reader.next(); m; m = reader.next()) {
      const b = m.body;
      switch (String.fromCharCode(m.type)) {
        case "P": {
          const [name, at] = cstring(b, 0);
          statements.set(name, cstring(b, at)[0]);
          out.push(PARSE_COMPLETE);
          break;
        }
        case "B": {
          let at = cstring(b, 0)[1];
          const [name, next] = cstring(b, at);
          at = next + 2 + 2 * int16At(b, next);
          const params: (string | null)[] = [];
          const n = int16At(b, at);
          at += 2;
          for (let i = 0; i < n; i++) {
            const length = int32At(b, at);
            at += 4;
            params.push(length < 0 ? null : utf8.decode(b.subarray(at, at + length)));
            if (length > 0) at += length;
          }
          portal = { text: statements.get(name) ?? "", params };
          out.push(BIND_COMPLETE);
          break;
        }
        case "D":
          out.push(/^select/i.test(portal.text) ? ONE_INT_COLUMN : NO_DATA);
          break;
        case "E": {
          const { text, params } = portal;
          const tag = RESET_TAGS.get(text);
          if (tag) out.push(complete(tag));
          else if (text === RESET_CHECK) {
            let named = 0;
            for (const name of statements.keys()) if (name !== "") named++;
            out.push(dataRow(["", null, String(named), ""]), complete("SELECT 1"));
          } else if (/pg_type/.test(text)) out.push(complete("SELECT 0"));
          else out.push(dataRow([params[0] ?? "1"]), complete("SELECT 1"));
          break;
        }
        case "C":
          statements.delete(cstring(b, 1)[0]);
          out.push(CLOSE_COMPLETE);
          break;
        case "S":
          out.push(READY);
          break;
        default:
          throw new Error(`pipeline.ts cannot answer message ${String.fromCharCode(m.type)}`);
      }
    }
  };
  return {
    greeting: [],
    key: { pid: 1, secret: 2 },
    write(bytes) {
      reader.push(bytes.slice());
      const out: Uint8Array[] = [];
      answer(out);
      if (out.length > 0) setImmediate(() => receive(Buffer.concat(out)));
      return true;
    },
    onData: (fn) => void (receive = fn),
    onDrain: () => {},
    onClose: () => {},
    pause: () => {},
    resume: () => {},
    end: () => {},
    destroy: () => {},
  };
}

// `bearer`: the same statement as ten end users of one role, each with a token of a throwaway
// issuer's (served from this process; its keys are fetched once, then every token is remembered).
const bearer = process.argv[3] === "bearer";
const issuer = bearer ? await startIssuer() : undefined;
const tokens = issuer ? await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => issuer.sign({ role: "benchtok", scope: "db", sub: `app-user-${i}` }))) : [];
const dir = mkdtempSync(join(tmpdir(), "hbagate-pipeline-"));
writeFileSync(join(dir, "pg_hba.conf"), `host all bench 127.0.0.1/32 trust\n${issuer ? `host all benchtok 127.0.0.1/32 oauth issuer=${issuer.url} scope=db delegate_ident_mapping=1\n` : ""}`);
const settings = loadSettings({
  ...(issuer ? { HBAGATE_OAUTH_CA_FILE: issuer.caFile } : {}),
  HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
  HBAGATE_UPSTREAM_HOST: "127.0.0.1",
  HBAGATE_UPSTREAM_PORT: "5432",
  HBAGATE_POOL_MAX: String(CONCURRENCY),
  HBAGATE_STATEMENT_TIMEOUT_MS: "0",
});
const peer = { transport: "host" as const, address: "127.0.0.1", encrypted: false };
const platform = { ...nodePlatform(settings, { peer: () => peer }), upstream: (u: ConstructorParameters<typeof Pools>[0], c: ConstructorParameters<typeof Pools>[1]) => new Pools(u, c, async () => instantServer()) };
const gateway = await assembleGateway(settings, () => {}, platform, { defaultHba: undefined });
if (!gateway) throw new Error("the gateway did not assemble");
const body = JSON.stringify({ query: "select $1::int as n", params: [1] });
const headers = { "content-type": "application/json", authorization: "Basic " + btoa("bench:") };
let turn = 0;
const headersFor = (): Record<string, string> => (bearer ? { ...headers, authorization: `Bearer ${tokens[turn++ % tokens.length]}` } : headers);
// The same Requests answered by a bare Hono app that reads the body and answers fixed JSON: what
// fetch(), Request and Response cost here (the Node server's adapter spares the gateway most of it).
const floor = new Hono().post("/v1/:db/sql", async (c) => {
  JSON.parse(await c.req.text());
  return c.json({ command: "SELECT", rowCount: 1, fields: [{ name: "n", dataTypeID: 23 }], rows: [{ n: 1 }] });
});
const app = process.argv[3] === "floor" ? floor : gateway.app;
async function once(): Promise<void> {
  const res = await app.fetch(new Request("http://127.0.0.1/v1/postgres/sql", { method: "POST", headers: headersFor(), body }));
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${res.status} ${text}`);
}
async function run(ms: number): Promise<{ rps: number; cpu: number }> {
  let n = 0;
  const end = Date.now() + ms;
  const before = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        await once();
        n++;
      }
    }),
  );
  const cpu = process.cpuUsage(before);
  return { rps: n / (ms / 1000), cpu: (cpu.user + cpu.system) / n };
}
if (process.argv[4] === "serve") {
  // Served over HTTP instead (`... pipeline.ts 0 gateway|floor serve`): the Node server's adapter
  // and sockets, still without PostgreSQL, for a load generator of its own; CPU per request on SIGUSR2.
  const { serve } = await import("@hono/node-server");
  let at = process.cpuUsage();
  let served = 0;
  const server = serve({ fetch: (req, env) => (served++, app.fetch(req, env)), hostname: "127.0.0.1", port: 0 }, (info) => process.stdout.write(`ready ${info.port} ${JSON.stringify(tokens.map((t) => `Bearer ${t}`))}\n`));
  process.on("SIGUSR2", () => {
    const cpu = process.cpuUsage(at);
    process.stdout.write(JSON.stringify({ served, cpuMicrosPerRequest: Number(((cpu.user + cpu.system) / Math.max(1, served)).toFixed(1)) }) + "\n");
    at = process.cpuUsage();
    served = 0;
  });
  process.on("SIGINT", () => server.close(() => process.exit(0)));
  await new Promise(() => {});
}
await run(1000);
// Many short rounds, the least CPU per request reported: on a shared machine, the quietest
// stretch is the figure that compares two versions, not the average over the noise.
const rounds = [];
for (let i = 0; i < 4 * SECONDS; i++) rounds.push(await run(250));
const best = rounds.reduce((a, b) => (a.cpu < b.cpu ? a : b));
const sorted = rounds.map((r) => r.cpu).sort((a, b) => a - b);
console.log(JSON.stringify({ rps: Math.round(best.rps), cpuMicrosPerRequest: Number(best.cpu.toFixed(1)), median: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(1)) }));
await gateway.close();
await issuer?.stop();
