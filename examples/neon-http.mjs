// Neon's serverless driver and Drizzle over hbagate's /sql endpoint (one HTTP request per query).
//   node examples/neon-http.mjs       # HBAGATE_URL and DATABASE_URL to point elsewhere
import { neon, neonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-http";
import { sql as q } from "drizzle-orm";

neonConfig.fetchEndpoint = `${process.env.HBAGATE_URL ?? "http://127.0.0.1:8080"}/sql`; // the gateway, whatever host the URL names
const sql = neon(process.env.DATABASE_URL ?? "postgresql://postgres:unused@localhost/postgres");

const [row] = await sql`select ${41}::int + 1 as answer`;
console.log(row); // { answer: 42 }

const db = drizzle({ client: sql });
const { rows } = await db.execute(q`select current_user as who`);
console.log(rows); // [ { who: 'postgres' } ]

// Several statements in one transaction (rolled back whole on an error)
const [a, b] = await sql.transaction([sql`select 1 as one`, sql`select 2 as two`]);
console.log(a, b); // [ { one: 1 } ] [ { two: 2 } ]
