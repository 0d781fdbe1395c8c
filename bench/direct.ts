// The ceiling: the same postgres.js pool driven in-process at the same
// concurrency, no HTTP. Prints requests (statements) per second as JSON.
import postgres from "postgres";

const [query, paramsJson, duration, concurrency, prepare] = process.argv.slice(2);
const sql = postgres({ host: process.env.PGHOST, port: Number(process.env.PGPORT), username: process.env.PGUSER, database: "postgres", max: Number(process.env.POOL_MAX ?? 10) });
const params = JSON.parse(paramsJson!) as never[];
const until = Date.now() + Number(duration) * 1000;
let done = 0;
await sql`select 1`;
const started = Date.now();
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (Date.now() < until) {
      const rows = await sql.unsafe(query!, params, { prepare: prepare === "true" });
      JSON.stringify(rows);
      done++;
    }
  }),
);
process.stdout.write(JSON.stringify({ rps: done / ((Date.now() - started) / 1000) }) + "\n");
await sql.end();
