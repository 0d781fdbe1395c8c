// The unmodified Neon clients against the gateway's /sql endpoint: the
// @neondatabase/serverless HTTP query function and drizzle-orm/neon-http,
// over a real socket, with a real PostgreSQL behind.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { neon, neonConfig, NeonDbError } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-http";
import { eq } from "drizzle-orm";
import { pgTable, serial, text, timestamp } from "drizzle-orm/pg-core";
import { nodePeer, startListeners, type Listening } from "../../lib/node/listeners.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { testPools } from "./deps.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testApp } from "../harness/gateway.ts";

const users = pgTable("users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull().unique(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

describe("Neon clients through /sql", () => {
  let cluster: Cluster;
  let pools: Pools;
  let listening: Listening;
  let url: string;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login password 'app-secret'");
    await cluster.sql.unsafe("create database appdb owner app");
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    pools = testPools(cluster.port, { max: 4, statementTimeout: 5000 });
    const app = testApp(pools, "host all all 127.0.0.1/32 scram-sha-256\n", {
      peer: nodePeer,
      maxBodyBytes: 1 << 20,
    });
    listening = await startListeners(app.fetch, { host: "127.0.0.1", port: 0, unixSocket: undefined, tls: undefined });
    url = `${listening.urls[0]}/sql`;
    neonConfig.fetchEndpoint = () => url;
  });
  after(async () => {
    await listening?.close();
    await pools?.close();
    await cluster?.stop();
  });

  const connection = () => "postgresql://app:app-secret@db.example.invalid/appdb";

  test("neon(): a parameterised query returns typed rows", async () => {
    const sql = neon(connection());
    const rows = await sql.query("select $1::int + 1 as answer, $2::text as who, now() as at, '\\x01ff'::bytea as b", [41, "neon"]);
    assert.equal(rows[0]!.answer, 42);
    assert.equal(rows[0]!.who, "neon");
    assert.ok(rows[0]!.at instanceof Date);
    assert.deepEqual([...(rows[0]!.b as Uint8Array)], [1, 255]);
  });

  test("neon(): full results carry command, rowCount and fields", async () => {
    const sql = neon(connection(), { fullResults: true });
    await sql.query("create table t (id int primary key)");
    const r = await sql.query("insert into t values (1), (2)");
    assert.equal(r.command, "INSERT");
    assert.equal(r.rowCount, 2);
    const sel = await sql.query("select id from t order by id");
    assert.deepEqual(sel.rows, [{ id: 1 }, { id: 2 }]);
    assert.equal(sel.fields[0]!.name, "id");
    assert.equal(sel.fields[0]!.dataTypeID, 23);
  });

  test("neon(): a wrong password is a NeonDbError with 28P01", async () => {
    const sql = neon("postgresql://app:wrong@db.example.invalid/appdb");
    await assert.rejects(sql.query("select 1"), (e: unknown) => e instanceof NeonDbError && e.code === "28P01");
  });

  test("neon(): transactions honour their options and roll back on error", async () => {
    const sql = neon(connection());
    const [a, b] = await sql.transaction((tx) => [tx`select ${1}::int as a`, tx`show transaction_isolation`], {
      isolationLevel: "Serializable",
      readOnly: true,
    });
    assert.deepEqual(a, [{ a: 1 }]);
    assert.deepEqual(b, [{ transaction_isolation: "serializable" }]);
    await assert.rejects(
      sql.transaction((tx) => [tx`insert into t values (3)`, tx`insert into t values (3)`]),
      (e: unknown) => e instanceof NeonDbError && e.code === "23505",
    );
    assert.deepEqual(await sql`select count(*)::int as n from t where id = 3`, [{ n: 0 }]);
  });

  test("drizzle-orm/neon-http: select, insert, unique violation, batch", async () => {
    const sql = neon(connection());
    await sql.query("create table users (id serial primary key, email text not null unique, created_at timestamptz not null default now())");
    const db = drizzle({ client: sql });
    await db.insert(users).values({ email: "a@example.com" });
    const found = await db.select().from(users).where(eq(users.email, "a@example.com"));
    assert.equal(found.length, 1);
    assert.equal(found[0]!.email, "a@example.com");
    assert.ok(found[0]!.createdAt instanceof Date);
    await assert.rejects(db.insert(users).values({ email: "a@example.com" }), (e: unknown) => {
      const cause = (e as { cause?: unknown }).cause ?? e;
      return cause instanceof NeonDbError && cause.code === "23505" && cause.constraint === "users_email_key";
    });
    const [inserted, updated] = await db.batch([
      db.insert(users).values({ email: "b@example.com" }).returning({ id: users.id }),
      db.update(users).set({ email: "a2@example.com" }).where(eq(users.email, "a@example.com")),
    ]);
    assert.equal(inserted.length, 1);
    assert.equal(typeof inserted[0]!.id, "number");
    assert.equal(updated.rowCount, 1);
  });

  test("application_name and options in the connection string are startup parameters", async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "neon-connection-string": "postgresql://app:app-secret@db.example.invalid/appdb?application_name=mobile-app&options=-c%20search_path%3Dcustom&sslmode=require",
      },
      body: JSON.stringify({ query: "select current_setting('application_name') as a, current_setting('search_path') as s", params: [] }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { rows: string[][] }).rows, [["mobile-app", "custom"]]);
  });

  test("JSON or text/plain (what the client sends) is accepted, another Content-Type is not; a forged host is ignored", async () => {
    const post = (type: string) =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": type, "neon-connection-string": "postgresql://app:app-secret@evil.example:6543/appdb" },
        body: JSON.stringify({ query: "select current_database() as db", params: [] }),
      });
    for (const type of ["application/json", "text/plain;charset=UTF-8"]) {
      const res = await post(type);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { rows: string[][]; rowAsArray: boolean };
      assert.deepEqual(body.rows, [["appdb"]]);
      assert.equal(body.rowAsArray, true);
    }
    const other = await post("application/x-anything");
    assert.equal(other.status, 400);
    assert.equal(((await other.json()) as { code: string }).code, "22P04");
  });
});
