// The baselines the gateway is measured against, each run as its own process
// (`node --import tsx bench/servers.ts KIND PORT`, PORT 0 for any free one) so the load generator never
// shares an event loop with what it measures.
//   floor           a bare Hono server answering a parsed POST with fixed JSON
//                   (as many bytes as the x-floor-bytes header asks, so each
//                   scenario has a floor with the gateway's response size)
//   naive           ~30 lines of Hono + postgres.js sql.unsafe(query, params) -> {rows}, no auth
//   naive-prepared  the same with {prepare: true}
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import postgres from "postgres";

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);
const app = new Hono();

if (kind === "floor") {
  const bodies = new Map<number, string>();
  const sized = (n: number) => {
    let body = bodies.get(n);
    if (body === undefined) {
      body = JSON.stringify({ rows: [{ answer: "x".repeat(Math.max(0, n - 24)) }] });
      bodies.set(n, body);
    }
    return body;
  };
  app.post("/v1/:db/sql", async (c) => {
    await c.req.json();
    const bytes = c.req.header("x-floor-bytes");
    if (bytes === undefined) return c.json({ rows: [{ answer: 42 }] });
    return c.body(sized(Number(bytes)), 200, { "content-type": "application/json" });
  });
} else if (kind === "naive" || kind === "naive-prepared") {
  const sql = postgres({
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT),
    username: process.env.PGUSER,
    database: "postgres",
    max: Number(process.env.POOL_MAX ?? 10),
  });
  const prepare = kind === "naive-prepared";
  app.post("/v1/:db/sql", async (c) => {
    const body = (await c.req.json()) as { query?: string; params?: unknown[]; queries?: { query: string; params?: unknown[] }[] };
    try {
      if (body.queries) {
        const results = await sql.begin(async (tx) => {
          const out = [];
          for (const q of body.queries!) out.push({ rows: await tx.unsafe(q.query, (q.params ?? []) as never[], { prepare }) });
          return out;
        });
        return c.json({ results });
      }
      return c.json({ rows: await sql.unsafe(body.query!, (body.params ?? []) as never[], { prepare }) });
    } catch (err) {
      return c.json({ error: String(err) }, 400);
    }
  });
} else {
  throw new Error(`unknown server kind ${kind}`);
}

// "ready PORT": with PORT 0 the system picks a free port, and this says which.
serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, (info) => process.stdout.write(`ready ${info.port}\n`));
process.on("SIGINT", () => process.exit(0));
