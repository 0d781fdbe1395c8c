// An interactive transaction through hbagate's WebSocket sessions with Neon's
// unmodified client: read, decide in JavaScript, write, commit.
//
//   npm install && npm start          # in one terminal (embedded PGlite, trust from loopback)
//   node examples/session.mjs         # in another; HBAGATE_URL=ws://host:port to point elsewhere
import { Pool, neonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { sql } from "drizzle-orm";
import WebSocket from "ws";

const gateway = new URL(process.env.HBAGATE_URL ?? "ws://127.0.0.1:8080");
neonConfig.webSocketConstructor = WebSocket; // Node 20 has no global WebSocket
neonConfig.useSecureWebSocket = gateway.protocol === "wss:";
neonConfig.wsProxy = () => `${gateway.host}/v2`; // the gateway, whatever host the connection string names

const pool = new Pool({ connectionString: process.env.DATABASE_URL ?? "postgresql://postgres:unused@localhost/postgres" });
const client = await pool.connect();
try {
  await client.query("create table if not exists accounts (id int primary key, balance int not null)");
  await client.query("insert into accounts values (1, 100), (2, 0) on conflict (id) do nothing");
  await client.query("begin");
  const { rows } = await client.query("select balance from accounts where id = $1 for update", [1]);
  const amount = Math.min(rows[0].balance, 30); // the application decides, between round trips
  await client.query("update accounts set balance = balance - $1 where id = 1", [amount]);
  await client.query("update accounts set balance = balance + $1 where id = 2", [amount]);
  await client.query("commit");
  console.log("moved", amount, (await client.query("select id, balance from accounts order by id")).rows);
} catch (err) {
  await client.query("rollback").catch(() => {});
  throw err;
} finally {
  client.release();
}

// Drizzle on the same pool: a throw inside db.transaction rolls it back.
const db = drizzle({ client: pool });
await db.transaction(async (tx) => {
  const [{ total }] = (await tx.execute(sql`select sum(balance)::int as total from accounts`)).rows;
  console.log("total", total);
});
await pool.end();
