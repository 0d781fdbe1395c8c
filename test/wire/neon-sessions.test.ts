// Neon's Pool and Client (node-postgres compatible, over a WebSocket) and
// drizzle-orm/neon-serverless, unmodified, against the gateway's /v2 in front
// of a real PostgreSQL: parameters, interactive transactions, rollbacks, many
// sessions at once, and hba refusals with PostgreSQL's SQLSTATEs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, Pool } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { eq, sql as dsql } from "drizzle-orm";
import { integer, pgTable, text } from "drizzle-orm/pg-core";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { pointNeonAt, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import { eventually } from "../harness/eventually.ts";

const accounts = pgTable("accounts", { id: integer("id").primaryKey(), owner: text("owner").notNull(), balance: integer("balance").notNull() });

describe("Neon's Pool and Client over the gateway's WebSocket", () => {
  let cluster: Cluster;
  let gw: SessionGateway;
  const url = (user: string, password: string, database = "postgres") => `postgresql://${user}:${encodeURIComponent(password)}@${gw.authority.split(":")[0]}/${database}`;

  before(async () => {
    cluster = await startCluster({ settings: { max_connections: "140" } });
    await cluster.sql.unsafe(`
      create role app login password 'app-secret';
      create role other login password 'other-secret';
      create table accounts (id int primary key, owner text not null, balance int not null);
      insert into accounts values (1, 'ann', 100), (2, 'ben', 50);
      grant select, insert, update on accounts to app;
    `);
    // The upstream checks passwords itself (scram): a session logs in with the caller's own.
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    gw = await startSessionGateway(
      [
        "host all app 127.0.0.1/32 scram-sha-256",
        "host all other 127.0.0.1/32 reject",
        "hostssl all all 127.0.0.1/32 trust",
      ].join("\n") + "\n",
      cluster.port,
      { HBAGATE_SESSIONS_MAX: "120", HBAGATE_SESSIONS_MAX_PER_ROLE: "110", HBAGATE_POOL_MAX_TOTAL: "130" },
    );
    pointNeonAt(gw);
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  test("Client: a query with parameters runs as the caller's role", async () => {
    const client = new Client(url("app", "app-secret"));
    await client.connect();
    try {
      const { rows } = await client.query("select $1::int + $2::int as sum, current_user as u, $3::text as t", [40, 2, "naïve ✓"]);
      assert.deepEqual(rows, [{ sum: 42, u: "app", t: "naïve ✓" }]);
    } finally {
      await client.end();
    }
  });

  test("an interactive transaction reads, decides in JavaScript, writes and commits", async () => {
    const client = new Client(url("app", "app-secret"));
    await client.connect();
    try {
      await client.query("begin");
      const { rows } = await client.query("select balance from accounts where id = $1 for update", [1]);
      const balance = rows[0].balance as number;
      // The decision is the application's, between round trips.
      const transfer = balance >= 30 ? 30 : 0;
      await client.query("update accounts set balance = balance - $1 where id = 1", [transfer]);
      await client.query("update accounts set balance = balance + $1 where id = 2", [transfer]);
      await client.query("commit");
    } finally {
      await client.end();
    }
    const after = await cluster.sql`select id, balance from accounts order by id`;
    assert.deepEqual(after.map((r) => [r.id, r.balance]), [[1, 70], [2, 80]]);
  });

  test("an error inside a transaction: the client's rollback leaves nothing behind, and the session goes on", async () => {
    const client = new Client(url("app", "app-secret"));
    await client.connect();
    try {
      await client.query("begin");
      await client.query("insert into accounts values (3, 'cat', 1)");
      await assert.rejects(client.query("insert into accounts values (3, 'dup', 1)"), (e: { code?: string }) => e.code === "23505");
      await assert.rejects(client.query("select 1"), (e: { code?: string }) => e.code === "25P02");
      await client.query("rollback");
      const { rows } = await client.query("select count(*)::int as n from accounts where id = 3");
      assert.equal(rows[0].n, 0);
    } finally {
      await client.end();
    }
  });

  test("drizzle-orm/neon-serverless: db.transaction commits, and a throw rolls back", async () => {
    const pool = new Pool({ connectionString: url("app", "app-secret"), max: 2 });
    const db = drizzle({ client: pool });
    try {
      await db.transaction(async (tx) => {
        const [row] = await tx.select().from(accounts).where(eq(accounts.id, 2));
        await tx.update(accounts).set({ balance: row!.balance + 5 }).where(eq(accounts.id, 2));
      });
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.update(accounts).set({ balance: 0 }).where(eq(accounts.id, 2));
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      const [row] = await db.select({ balance: accounts.balance }).from(accounts).where(eq(accounts.id, 2));
      const [{ who }] = (await db.execute(dsql`select current_user as who`)).rows as [{ who: string }];
      assert.equal(who, "app");
      assert.equal(row!.balance, (await cluster.sql`select balance from accounts where id = 2`)[0]!.balance);
      assert.ok(row!.balance > 0);
    } finally {
      await pool.end();
    }
  });

  test("100 sessions at once, each its own server session", async () => {
    const clients = Array.from({ length: 100 }, () => new Client(url("app", "app-secret")));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      // Each holds a transaction open at the same time: 100 distinct backends.
      await Promise.all(clients.map((c) => c.query("begin")));
      const pids = await Promise.all(clients.map(async (c, i) => (await c.query("select pg_backend_pid() as pid, $1::int as i", [i])).rows[0]));
      assert.equal(new Set(pids.map((p) => p.pid)).size, 100);
      assert.deepEqual(pids.map((p) => p.i), clients.map((_, i) => i));
      await Promise.all(clients.map((c) => c.query("commit")));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // Closed with the WebSockets: no backend of app's is left.
    await eventually(async () => (await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = 'app'`)[0]!.n === 0, { what: "app's backends to end" });
  });

  const refusal = async (connectionString: string, pipeline: boolean) => {
    pointNeonAt(gw, { pipelineConnect: pipeline ? "password" : false });
    const client = new Client(connectionString);
    const errors: unknown[] = [];
    client.on("error", (e) => errors.push(e));
    try {
      // Pipelined, connect() resolves before the server answers: the refusal meets the first query.
      await client.connect();
      await client.query("select 1");
      return undefined;
    } catch (e) {
      return e as { code?: string; message?: string; severity?: string };
    } finally {
      pointNeonAt(gw);
      await client.end().catch(() => {});
    }
  };

  for (const pipeline of [true, false]) {
    test(`refusals with PostgreSQL's SQLSTATE and wording (${pipeline ? "pipelined" : "not pipelined"} connect)`, async () => {
      const wrong = await refusal(url("app", "wrong"), pipeline);
      assert.equal(wrong?.code, "28P01");
      assert.equal(wrong?.message, 'password authentication failed for user "app"');
      const rejected = await refusal(url("other", "other-secret"), pipeline);
      assert.equal(rejected?.code, "28000");
      assert.match(rejected!.message!, /^pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "other", database "postgres", no encryption$/);
      // hostssl: a plain ws:// session is not encrypted, so no line matches.
      const none = await refusal(url("nobody", "x"), pipeline);
      assert.equal(none?.code, "28000");
      assert.match(none!.message!, /^no pg_hba\.conf entry for host "127\.0\.0\.1", user "nobody", database "postgres", no encryption$/);
      // An unknown user and a wrong password read the same.
      const unknown = await refusal(url("app", "wrong", "nosuchdb"), pipeline);
      assert.equal(unknown?.code, "28P01");
    });
  }
});
