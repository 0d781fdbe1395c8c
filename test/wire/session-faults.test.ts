// What a session survives and what it refuses, against a real PostgreSQL:
// clients that vanish mid-transaction, an upstream that restarts, hostile
// bytes (garbage, truncated, oversized, text frames, other protocol
// versions), each limit with its SQLSTATE, and cancel requests routed by the
// gateway's own keys. After every fault the process still serves.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { passwordMessage, queryMessage, RawSession, startSessionGateway, startupMessage, type SessionGateway } from "../harness/sessions.ts";
import { eventually } from "../harness/eventually.ts";
import { MessageWriter, CANCEL_REQUEST } from "../../lib/wire/protocol.ts";

const HBA = ["host all app 127.0.0.1/32 trust", "host all pw 127.0.0.1/32 scram-sha-256", "host all other 127.0.0.1/32 trust"].join("\n") + "\n";

describe("sessions under faults and limits", () => {
  let cluster: Cluster;
  let gw: SessionGateway;
  const backends = async (user: string) => (await cluster.sql`select count(*)::int as n from pg_stat_activity where usename = ${user}`)[0]!.n as number;
  /** A session that logs in and answers: the gateway is still up and serving. */
  const stillServes = async (target = gw) => {
    const s = new RawSession(target.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.send(queryMessage("select 1"));
    assert.ok(await s.next("D"));
    s.close();
  };

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role app login; create role other login; create role pw login password 'pw-secret';
      create table items (id int primary key, n int not null); insert into items values (1, 0);
      grant select, update on items to app, other;
    `);
    await cluster.writeHba("host all app,other 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    gw = await startSessionGateway(HBA, cluster.port, { HBAGATE_SESSION_MAX_MESSAGE_BYTES: "65536" });
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  test("a client that vanishes mid-transaction: rolled back upstream, its connection closed", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.send(queryMessage("begin; update items set n = n + 1 where id = 1"));
    assert.ok(await s.next("Z"));
    assert.equal(await backends("app"), 1);
    s.close(); // no close frame, no Terminate: the socket is simply gone
    await eventually(async () => (await backends("app")) === 0, { what: "the vanished client's backend to end" });
    // Nothing of it committed, and its row lock is gone (a waiting update would time out).
    await cluster.sql.begin(async (tx) => {
      await tx`set local lock_timeout = '2s'`;
      await tx`update items set n = n where id = 1`;
    });
    assert.equal((await cluster.sql`select n from items where id = 1`)[0]!.n, 0);
  });

  test("the upstream restarting ends the session with an error; the process stays up and serves again", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    await cluster.restart("fast");
    const e = await s.error();
    assert.ok(e, "an ErrorResponse before the close");
    assert.equal(e.severity, "FATAL");
    assert.match(e.code, /^(57P01|08006)$/);
    await s.closed;
    await stillServes();
  });

  test("a pipelined password to a trust line is dropped; a pipelined query runs", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.opened;
    const startup = startupMessage({ user: "app", database: "postgres" });
    const pw = passwordMessage("ignored");
    const q = queryMessage("select 41 + 1");
    // One frame: startup, password, query, as Neon's client coalesces them.
    s.send(new Uint8Array([...startup, ...pw, ...q]));
    const row = await s.next("D");
    assert.ok(row);
    assert.match(new TextDecoder().decode(row.body), /42/);
    assert.equal(await s.error(200).catch(() => undefined), undefined);
    s.close();
  });

  test("the password exchange: asked in cleartext, verified, pipelined or not", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "pw", database: "postgres" }, "pw-secret");
    s.send(queryMessage("select current_user"));
    assert.match(new TextDecoder().decode((await s.next("D"))!.body), /pw/);
    s.close();
    const bad = new RawSession(gw.wsUrl);
    await assert.rejects(bad.login({ user: "pw", database: "postgres" }, "nope"), (e: { code?: string }) => e.code === "28P01");
    assert.equal(await bad.closed, 1000);
  });

  const refusedWith = async (bytes: Uint8Array[], code: RegExp | string) => {
    const s = new RawSession(gw.wsUrl);
    await s.opened;
    for (const b of bytes) s.send(b);
    const e = await s.error();
    assert.ok(e, "an ErrorResponse");
    if (typeof code === "string") assert.equal(e.code, code);
    else assert.match(e.code, code);
    assert.equal(e.severity, "FATAL");
    await s.closed;
    return e;
  };

  test("garbage before and after login gets an ErrorResponse and a close, never a crash", async () => {
    // A startup packet whose length cannot be one.
    await refusedWith([new Uint8Array([0, 0, 0, 2, 1, 2, 3, 4])], "08P01");
    await refusedWith([new Uint8Array([0x7f, 0xff, 0xff, 0xff])], "08P01");
    // Protocol 2.0: PostgreSQL's wording.
    const v2 = await refusedWith([startupMessage({ user: "app" }, 0x20000)], "0A000");
    assert.equal(v2.message, "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
    // No user.
    await refusedWith([startupMessage({ database: "postgres" })], "28000");
    // A password message that is not one, to a password line.
    await refusedWith([startupMessage({ user: "pw", database: "postgres" }), new Uint8Array([0x51, 0, 0, 0, 5, 0])], "08P01");
    // A message length below 4 inside the relay.
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.send(new Uint8Array([0x51, 0, 0, 0, 2]));
    assert.equal((await s.error())?.code, "54000");
    await s.closed;
    // A text frame.
    const t = new RawSession(gw.wsUrl);
    await t.login({ user: "app", database: "postgres" });
    t.ws.send("select 1");
    assert.equal((await t.error())?.code, "08P01");
    await t.closed;
    await stillServes();
  });

  test("an oversized message is refused (54000) before it is read; a truncated one ends with the client", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    const big = new MessageWriter().cstring(`select '${"x".repeat(70_000)}'`).finish("Q");
    s.send(big);
    const e = await s.error();
    assert.equal(e?.code, "54000");
    await s.closed;
    const t = new RawSession(gw.wsUrl);
    await t.login({ user: "app", database: "postgres" });
    t.send(queryMessage("select pg_sleep(0)").subarray(0, 7));
    await eventually(async () => (await backends("app")) === 1, { what: "the session's backend" });
    t.close();
    await eventually(async () => (await backends("app")) === 0, { what: "the truncated session's backend to end" });
    await stillServes();
  });

  test("protocol 3.2 is answered with NegotiateProtocolVersion 3.0, and the session works", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.opened;
    s.send(startupMessage({ user: "app", database: "postgres", "_pq_.something": "on" }, 0x30002));
    const v = await s.next("v");
    assert.ok(v);
    const view = new DataView(v.body.buffer, v.body.byteOffset);
    assert.equal(view.getInt32(0), 0x30000);
    assert.equal(view.getInt32(4), 1);
    assert.match(new TextDecoder().decode(v.body.subarray(8)), /_pq_\.something/);
    await s.next("Z");
    s.send(queryMessage("select 1"));
    assert.ok(await s.next("D"));
    s.close();
  });

  test("random bytes as a client's first frames never crash the gateway", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 4 }), async (frames) => {
        const s = new RawSession(gw.wsUrl);
        await s.opened;
        for (const f of frames) s.send(f);
        // Either an error and a close, or the gateway waits for more (then the client leaves).
        await Promise.race([s.closed, new Promise((r) => setTimeout(r, 20))]);
        s.close();
      }),
      { numRuns: 60 },
    );
    await stillServes();
  });

  test("a CancelRequest with the gateway's key cancels the session's statement; a wrong secret does nothing", async () => {
    const s = new RawSession(gw.wsUrl);
    const key = await s.login({ user: "app", database: "postgres" });
    s.send(queryMessage("select pg_sleep(20)"));
    await eventually(async () => (await cluster.sql`select count(*)::int as n from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'`)[0]!.n === 1, { what: "the sleep to run" });
    const cancel = (secret: number) => {
      const c = new RawSession(gw.wsUrl);
      void c.opened.then(() => c.send(new MessageWriter().int32(CANCEL_REQUEST).int32(key.pid).int32(secret).finish()));
      return c.closed;
    };
    await cancel(key.secret ^ 1);
    // An absence: the wrong key must not have cancelled anything in this time.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(s.messages.some((m) => m.type === 0x45), false);
    await cancel(key.secret);
    const e = await s.error();
    assert.equal(e?.code, "57014");
    await s.next("Z");
    s.close();
  });

  test("an upgrade from a page whose origin is not allowed, or for a host that is not ours, is refused", async () => {
    await assert.rejects(new RawSession(gw.wsUrl, { origin: "https://evil.example" }).opened, (e: { status?: number }) => e.status === 403 || e.status === 400);
    await assert.rejects(new RawSession(gw.wsUrl, { host: "rebound.evil.example" }).opened, (e: { status?: number }) => typeof e.status === "number" && e.status >= 400);
  });
});

describe("session limits", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login; create role other login;`);
    await cluster.writeHba("host all app,other 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => cluster?.stop());

  test("sessions in total and per role: 53300 with PostgreSQL's wording", async () => {
    const gw = await startSessionGateway("host all all 127.0.0.1/32 trust\n", cluster.port, { HBAGATE_SESSIONS_MAX: "2", HBAGATE_SESSIONS_MAX_PER_ROLE: "1" });
    try {
      const a = new RawSession(gw.wsUrl);
      await a.login({ user: "app", database: "postgres" });
      const b = new RawSession(gw.wsUrl);
      await assert.rejects(b.login({ user: "app", database: "postgres" }), (e: { code?: string; message?: string }) => e.code === "53300" && e.message === 'too many connections for role "app"');
      await b.closed;
      const c = new RawSession(gw.wsUrl);
      await c.login({ user: "other", database: "postgres" });
      const d = new RawSession(gw.wsUrl);
      await assert.rejects(d.login({ user: "other", database: "postgres" }), (e: { code?: string; message?: string }) => e.code === "53300" && e.message === "sorry, too many clients already");
      a.close();
      // The place is free again once the first session has gone.
      await eventually(async () => {
        const e = new RawSession(gw.wsUrl);
        try {
          await e.login({ user: "app", database: "postgres" });
          return true;
        } finally {
          e.close();
        }
      }, { what: "a place after a session ended" });
      c.close();
    } finally {
      await gw.close();
    }
  });

  test("idle sessions end with 57P05, idle in a transaction with 25P03; authentication has a time bound (57014)", async () => {
    const gw = await startSessionGateway("host all all 127.0.0.1/32 trust\n", cluster.port, { HBAGATE_SESSION_IDLE_MS: "300", HBAGATE_SESSION_AUTH_TIMEOUT_MS: "300" });
    try {
      const idle = new RawSession(gw.wsUrl);
      await idle.login({ user: "app", database: "postgres" });
      // A statement longer than the idle bound is not idleness.
      idle.send(queryMessage("select pg_sleep(0.6)"));
      assert.ok(await idle.next("Z"));
      assert.equal(idle.messages.some((m) => m.type === 0x45), false);
      const e = await idle.error();
      assert.equal(e?.code, "57P05");
      assert.equal(e?.message, "terminating connection due to idle-session timeout");
      await idle.closed;
      const inTx = new RawSession(gw.wsUrl);
      await inTx.login({ user: "app", database: "postgres" });
      inTx.send(queryMessage("begin"));
      assert.ok(await inTx.next("Z"));
      assert.equal((await inTx.error())?.code, "25P03");
      await inTx.closed;
      const silent = new RawSession(gw.wsUrl);
      await silent.opened;
      const t = await silent.error();
      assert.equal(t?.code, "57014");
      assert.equal(t?.message, "canceling authentication due to timeout");
      await silent.closed;
    } finally {
      await gw.close();
    }
  });

  test("a session past its lifetime ends at its next idle point (57P01)", async () => {
    const gw = await startSessionGateway("host all all 127.0.0.1/32 trust\n", cluster.port, { HBAGATE_SESSION_LIFETIME_MS: "400" });
    try {
      const s = new RawSession(gw.wsUrl);
      await s.login({ user: "app", database: "postgres" });
      // Busy across the lifetime: the statement finishes first.
      s.send(queryMessage("select pg_sleep(0.7)"));
      assert.ok(await s.next("D"));
      assert.ok(await s.next("Z"));
      const e = await s.error();
      assert.equal(e?.code, "57P01");
      await s.closed;
    } finally {
      await gw.close();
    }
  });
});
