// The gateway's own protocol client for pool connections, against a real
// PostgreSQL: statements with and without names, rows and columns as the
// server describes them, errors with their fields, a plan gone stale under
// DDL, a prelude carried ahead of a statement in its implicit transaction,
// the reset pipelined behind a statement (one write) and what it finds,
// a connection lost with an exchange on it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { openServerStream } from "../../lib/upstream/session-connection.ts";
import { textArray, WireConnection, type Values } from "../../lib/upstream/wire-connection.ts";
import { GatewayError } from "../../lib/errors.ts";
import { committingStalePlanProcedure } from "../harness/stale-plan.ts";

const text = (v: Uint8Array | null) => (v === null ? null : new TextDecoder().decode(v));

describe("WireConnection", () => {
  let cluster: Cluster;
  const open: WireConnection[] = [];
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role wire login");
    await cluster.writeHba("host all wire 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    for (const c of open) c.end();
    await cluster?.stop();
  });

  async function connect(): Promise<WireConnection> {
    const settings = { host: "127.0.0.1", port: cluster.port, connectTimeout: 5 } as Parameters<typeof openServerStream>[0];
    const c = new WireConnection(await openServerStream(settings, { database: "postgres", user: "wire", password: undefined, parameters: [] }));
    open.push(c);
    return c;
  }

  async function rows(c: WireConnection, query: string, params: (string | null)[] = [], prepare = false) {
    const out: (string | null)[][] = [];
    const done = await c.run({ text: query, params, prepare, row: (v: Values) => out.push(v.map(text)) });
    return { ...done, rows: out };
  }

  test("a statement's rows, columns and command tag; NULL as null", async () => {
    const c = await connect();
    const r = await rows(c, "select $1::int + 1 as answer, $2::text as nothing, 'x'::varchar(7) as v", ["41", null]);
    assert.deepEqual(r.rows, [["42", null, "x"]]);
    assert.equal(r.command, "SELECT");
    assert.equal(r.count, 1);
    assert.deepEqual(
      r.columns.map((c) => [c.name, c.type, c.modifier]),
      [["answer", 23, -1], ["nothing", 25, -1], ["v", 1043, 11]],
    );
    const made = await rows(c, "create temp table t(a int)");
    assert.deepEqual([made.command, made.count, made.rows], ["CREATE TABLE", null, []]);
    const inserted = await rows(c, "insert into t select generate_series(1, 3)");
    assert.deepEqual([inserted.command, inserted.count], ["INSERT", 3]);
    assert.equal((await rows(c, "")).command, "");
  });

  test("parameters arrive as the caller wrote them: multibyte, surrogate pairs, long ones encoded apart, NULL and empty among them", async () => {
    const c = await connect();
    // 4,097 UTF-16 units and more are encoded on their own; shorter ones into the Bind's own buffer.
    const long = "ä€😀x".repeat(1200);
    const params = ["héllo", "😀", null, "", long, "z".repeat(4096), "€".repeat(4097)];
    for (const prepare of [false, true, true]) {
      const r = await rows(c, "select $1::text a, $2::text b, $3::text c, $4::text d, $5::text e, $6::text f, $7::text g, octet_length($5::text) n", params, prepare);
      assert.deepEqual(r.rows[0]!.slice(0, 7), params);
      assert.equal(r.rows[0]![7], String(new TextEncoder().encode(long).length));
    }
  });

  test("a prepared statement is parsed once per connection and runs with new parameters", async () => {
    const c = await connect();
    const query = "select $1::int * 2 as twice";
    for (const n of ["1", "2", "3"]) assert.deepEqual((await rows(c, query, [n], true)).rows, [[String(Number(n) * 2)]]);
    const names = await rows(c, "select count(*) from pg_prepared_statements where statement = $1", [query]);
    assert.deepEqual(names.rows, [["1"]]);
  });

  test("the server's error with its fields; the connection goes on", async () => {
    const c = await connect();
    await assert.rejects(
      () => rows(c, "select 1/0"),
      (err: unknown) => err instanceof GatewayError && err.code === "22012" && err.fields.message === "division by zero",
    );
    assert.equal(c.status, "I");
    assert.deepEqual((await rows(c, "select 1")).rows, [["1"]]);
  });

  test("a prepared statement whose result type DDL changed is prepared again, outside a transaction", async () => {
    const c = await connect();
    await rows(c, "create temp table shape(a int)");
    await rows(c, "insert into shape values (1)");
    assert.deepEqual((await rows(c, "select * from shape", [], true)).rows, [["1"]]);
    const named = async () => (await rows(c, "select count(*) from pg_prepared_statements where not from_sql")).rows[0]![0];
    const before = await named();
    await rows(c, "alter table shape add column b text default 'two'");
    assert.deepEqual((await rows(c, "select * from shape", [], true)).rows, [["1", "two"]]);
    // The stale one is closed on the server, not left beside its replacement.
    assert.equal(await named(), before);
  });

  test("a plan found stale inside a procedure that committed is not run again, with a prelude carried or not", async () => {
    await cluster.sql.unsafe(`
      create table calls (n serial primary key); grant all on calls to wire; grant all on sequence calls_n_seq to wire;
      ${committingStalePlanProcedure("call_once", "calls")}
      grant execute on procedure call_once to wire;`);
    const c = await connect();
    const count = async () => Number((await cluster.sql`select count(*)::int as n from calls`)[0]!.n);
    for (const prelude of [undefined, { text: "select set_config($1, $2, false)", params: ["app.claims", "x"], prepare: true }]) {
      // Twice each: the second is prepared, and its error is the one a retry would take for a stale plan.
      for (let i = 0; i < 2; i++) {
        const before = await count();
        c.carry(prelude);
        await assert.rejects(() => rows(c, "call call_once()", [], true), GatewayError);
        assert.equal(await count(), before + 1, `one row per call (prelude: ${prelude !== undefined}, call ${i + 1})`);
      }
    }
  });

  test("a carried prelude runs ahead of the next statement in its implicit transaction: all or nothing, once", async () => {
    const c = await connect();
    const claims = { text: "select set_config($1, $2, false)", params: ["app.claims", "alice"], prepare: true };
    await cluster.sql.unsafe("create table audit(who text); grant select, insert on audit to wire");
    // The statement sees it; the prelude's own row and tag are not the statement's.
    c.carry(claims);
    const seen = await rows(c, "select current_setting('app.claims') as who, 2 as n", [], true);
    assert.deepEqual([seen.rows, seen.command, seen.count, seen.columns.map((col) => col.name)], [[["alice", "2"]], "SELECT", 1, ["who", "n"]]);
    // Carried once: the next statement goes alone.
    assert.equal((await rows(c, "select 1")).rows.length, 1);
    assert.equal(await c.reset(), "clean");
    // A prelude that fails: the statement behind it never runs.
    c.carry({ text: "select set_config($1, $2, false)", params: ["not a valid name", "x"], prepare: true });
    await assert.rejects(() => rows(c, "insert into audit values ('written without claims')"), GatewayError);
    assert.deepEqual((await rows(c, "select count(*) from audit")).rows, [["0"]]);
    // A statement that fails rolls the prelude back with it.
    c.carry({ ...claims, params: ["app.claims", "bob"] });
    await assert.rejects(() => rows(c, "select 1 / 0"), GatewayError);
    assert.deepEqual((await rows(c, "select current_setting('app.claims', true)")).rows, [[""]]);
    // A plan gone stale under DDL is run again with its prelude.
    await rows(c, "create temp table shape2(a int)");
    await rows(c, "insert into shape2 values (1)");
    const query = "select *, current_setting('app.claims', true) as who from shape2";
    await rows(c, query, [], true);
    await rows(c, "alter table shape2 add column b text default 'two'");
    c.carry({ ...claims, params: ["app.claims", "carol"] });
    assert.deepEqual((await rows(c, query, [], true)).rows, [["1", "two", "carol"]]);
    // Unprepared: it leaves no statement named on the connection.
    const named = async () => (await rows(c, "select count(*) from pg_prepared_statements where not from_sql")).rows[0]![0];
    const before = await named();
    c.carry({ text: "select set_config($1, $2, false), set_config($3, $4, false)", params: ["app.a", "1", "app.b", "2"], prepare: false });
    assert.deepEqual((await rows(c, "select current_setting('app.b')")).rows, [["2"]]);
    assert.equal(await named(), before);
  });

  test("the reset behind a statement: one write, and what the request left is gone", async () => {
    const c = await connect();
    await rows(c, "select set_config('app.secret', 'mine', false)");
    await rows(c, "do $$ begin execute 'prepare leftover as select 1'; end $$");
    await rows(c, "select pg_advisory_lock(42)");
    assert.equal(await c.reset(), "clean");
    const after = await rows(c, "select current_setting('app.secret', true), (select count(*) from pg_prepared_statements where from_sql), (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())");
    assert.deepEqual(after.rows, [["", "0", "0"]]);
    // Statement and reset sent in the same turn leave in one write: both settle, in order.
    const [statement, reset] = await Promise.all([rows(c, "select 7", [], true), c.reset()]);
    assert.deepEqual(statement.rows, [["7"]]);
    assert.equal(reset, "clean");
  });

  test("a statement the gateway named, deallocated or replaced by a caller's SQL, makes the reset dirty", async () => {
    for (const tamper of [
      "do $$ begin execute 'deallocate hbagate_reset_0'; end $$",
      "do $$ begin execute 'deallocate hbagate_reset_0'; execute 'prepare hbagate_reset_0 as select 1'; end $$",
      "do $$ begin execute 'deallocate hbagate_1'; execute 'prepare hbagate_1 as select 2'; end $$",
      "do $$ begin execute 'deallocate all'; end $$",
    ]) {
      const c = await connect();
      await rows(c, "select 1", [], true);
      assert.equal(await c.reset(), "clean");
      await rows(c, tamper);
      assert.equal(await c.reset(), "dirty", tamper);
    }
    // A statement prepared in SQL under a name of its own is only deallocated.
    const c = await connect();
    await rows(c, "select 1", [], true);
    await rows(c, "do $$ begin execute 'prepare mine as select 1'; end $$");
    assert.equal(await c.reset(), "clean");
    assert.deepEqual((await rows(c, "select count(*) from pg_prepared_statements where from_sql")).rows, [["0"]]);
    // Many: the connection is not reused rather than deallocating them one by one.
    await rows(c, "do $$ begin for i in 1..17 loop execute format('prepare p%s as select 1', i); end loop; end $$");
    assert.equal(await c.reset(), "dirty");
  });

  test("a transaction left open makes the reset dirty", async () => {
    const c = await connect();
    await rows(c, "begin");
    assert.equal(c.status, "T");
    assert.equal(await c.reset(), "dirty");
  });

  test("a connection lost with a statement on it fails that statement as lost, and what follows as never sent", async () => {
    const c = await connect();
    const pid = (await rows(c, "select pg_backend_pid()")).rows[0]![0]!;
    // Its failure is caught as soon as it happens (the close may come before the terminate's answer).
    const running = rows(c, "select pg_sleep(30)").then(
      () => assert.fail("a statement on a terminated backend completed"),
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, 200));
    await cluster.sql.unsafe("select pg_terminate_backend($1)", [pid]);
    assert.equal(((await running) as { code?: string }).code, "CONNECTION_CLOSED");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.isClosed, true);
    await assert.rejects(() => rows(c, "select 1"), (err: unknown) => (err as { code?: string }).code === "HBAGATE_SESSION_ENDED");
    assert.equal(await c.reset(), "closed");
  });
});

describe("textArray", () => {
  test("PostgreSQL's text[] output, quoted and not", () => {
    assert.deepEqual(textArray("{}"), []);
    assert.deepEqual(textArray("{a}"), ["a"]);
    assert.deepEqual(textArray('{a,"b c","d\\"e","f\\\\g",h}'), ["a", "b c", 'd"e', "f\\g", "h"]);
    assert.deepEqual(textArray('{"",","}'), ["", ","]);
  });
});
