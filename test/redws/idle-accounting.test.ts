// Red team (issue 17, fixed findings and guarantees): the idle and lifetime limits rest on counting Query/Sync/
// FunctionCall against ReadyForQuery. Where PostgreSQL answers differently
// from that count, the limits go wrong.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Cluster } from "../harness/postgres.ts";
import { queryMessage, RawSession, startSessionGateway, type SessionGateway, startTrustedApp } from "../harness/sessions.ts";
import { MessageWriter } from "../../lib/wire/protocol.ts";

const parse = (sql: string) => new MessageWriter().cstring("").cstring(sql).int16(0).finish("P");
const bind = () => new MessageWriter().cstring("").cstring("").int16(0).int16(0).int16(0).finish("B");
const execute = () => new MessageWriter().cstring("").int32(0).finish("E");
const sync = () => new MessageWriter().finish("S");
const flush = () => new MessageWriter().finish("H");

describe("redws: idle accounting", () => {
  let app: Awaited<ReturnType<typeof startTrustedApp>>;
  let cluster: Cluster;
  let gw: SessionGateway;
  before(async () => {
    app = await startTrustedApp({ HBAGATE_SESSION_IDLE_MS: "600" });
    ({ cluster, gw } = app);
  });
  after(async () => app?.close());

  // Found by the red team: after an error in the extended protocol PostgreSQL discards every
  // message up to the next Sync, a Query included, and answers the Sync with one ReadyForQuery;
  // the gateway's count of unanswered Queries and Syncs then never reaches zero and the session
  // is never idle. Kept (counting what the server discards would need the server's state), and
  // bounded: such a session ends at its lifetime plus the idle time (docs/sessions.md).
  test("a session whose count disagrees with the server's still ends, at its lifetime plus the idle time", async () => {
    const bounded = await startSessionGateway("host all app 127.0.0.1/32 trust\n", cluster.port, { HBAGATE_SESSION_IDLE_MS: "600", HBAGATE_SESSION_LIFETIME_MS: "800" });
    const s = new RawSession(bounded.wsUrl);
    try {
      await s.login({ user: "app", database: "postgres" });
      s.send(new Uint8Array([...parse("selec 1"), ...queryMessage("select 1"), ...sync()]));
      assert.equal((await s.error())?.code, "42601");
      assert.ok(await s.next("Z"));
      const e = await s.error(5000).catch(() => undefined);
      assert.equal(e?.code, "57P01");
      await s.closed;
    } finally {
      s.close();
      await bounded.close();
    }
  });

  // Found by the red team, fixed: Execute followed by Flush runs the statement without a Sync;
  // the gateway counts nothing unanswered and treats the running session as idle,
  // ending it with 57P05 "idle-session timeout" while the statement is running
  // (PostgreSQL's idle_session_timeout never fires during a statement).
  test("a statement running after Execute+Flush is not ended as idle", async () => {
    const s = new RawSession(gw.wsUrl);
    try {
      await s.login({ user: "app", database: "postgres" });
      s.send(new Uint8Array([...parse("select pg_sleep(2)"), ...bind(), ...execute(), ...flush()]));
      // The statement completes (CommandComplete) before any error.
      const complete = await s.next("C", 6000);
      assert.ok(complete, `CommandComplete, not ${JSON.stringify(s.messages.filter((m) => m.type === 0x45).map((m) => new TextDecoder().decode(m.body)))}`);
      s.send(sync());
      assert.ok(await s.next("Z"));
    } finally {
      s.close();
    }
  });
});
