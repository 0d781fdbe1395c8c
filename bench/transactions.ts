// A short interactive transaction — begin, select, update, commit, each a
// round trip — over sessions reused for the whole run, `concurrency` of them
// at once: through the gateway's WebSocket with Neon's Client, or with
// node-postgres straight to PostgreSQL (the same driver family: Neon's Client
// is node-postgres over a WebSocket). Prints transactions per second as JSON.
//   transactions.ts ws <ws authority> <user> <password> <seconds> <concurrency>
//   transactions.ts direct <host> <port> <user> <seconds> <concurrency>
import pg from "pg";
import { Client as NeonClient, neonConfig } from "@neondatabase/serverless";
import WebSocket from "ws";

const [mode, a, b, c, seconds, concurrency] = process.argv.slice(2);
const n = Number(concurrency);

type Queryable = { query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>; end(): Promise<void>; connect(): Promise<unknown> };

function client(): Queryable {
  if (mode === "ws") {
    neonConfig.webSocketConstructor = WebSocket;
    neonConfig.useSecureWebSocket = false;
    neonConfig.wsProxy = () => `${a}/v2`;
    return new NeonClient(`postgresql://${b}:${encodeURIComponent(c!)}@127.0.0.1/postgres`) as unknown as Queryable;
  }
  return new pg.Client({ host: a, port: Number(b), user: c, database: "postgres" }) as unknown as Queryable;
}

const clients = Array.from({ length: n }, client);
await Promise.all(clients.map((x) => x.connect()));
const transaction = async (x: Queryable, id: number) => {
  await x.query("begin");
  const { rows } = await x.query("select v from t where id = $1", [id]);
  await x.query("update t set v = $1 where id = $2", [String(rows[0]!.v).split("").reverse().join(""), id]);
  await x.query("commit");
};
// Warm: one transaction each.
await Promise.all(clients.map((x, i) => transaction(x, i + 1)));
const until = Date.now() + Number(seconds) * 1000;
let done = 0;
const started = Date.now();
await Promise.all(
  clients.map(async (x, i) => {
    // Each session its own row: no lock waits between them.
    while (Date.now() < until) {
      await transaction(x, i + 1);
      done++;
    }
  }),
);
process.stdout.write(JSON.stringify({ tps: done / ((Date.now() - started) / 1000) }) + "\n");
await Promise.all(clients.map((x) => x.end()));
