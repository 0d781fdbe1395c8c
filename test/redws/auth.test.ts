// Red team (issue 17, fixed findings and guarantees): the password exchange of a session against the rules:
// the brake, what a refusal tells, and rules changed while a client is asked.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { passwordMessage, RawSession, startSessionGateway, startupMessage, type SessionGateway } from "../harness/sessions.ts";

describe("redws: the password exchange", () => {
  let cluster: Cluster;
  let dir: string;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role pw login password 'pw-secret'; create role pw2 login password 'pw2-secret';`);
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    dir = await mkdtemp(join(tmpdir(), "hbagate-redws-auth-"));
  });
  after(async () => {
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  // GUARANTEE (passes): the brake counts a session's failures as it does a request's.
  test("the brute-force brake locks a role after HBAGATE_AUTH_LOCK_AFTER wrong passwords over sessions", async () => {
    const gw = await startSessionGateway("host all all 127.0.0.1/32 scram-sha-256\n", cluster.port, { HBAGATE_AUTH_LOCK_AFTER: "3", HBAGATE_AUTH_SLOW_AFTER: "100" });
    try {
      for (let i = 0; i < 3; i++) {
        await assert.rejects(new RawSession(gw.wsUrl).login({ user: "pw", database: "postgres" }, `wrong-${i}`), (e: { code?: string }) => e.code === "28P01");
      }
      // Now even the right password is refused.
      await assert.rejects(new RawSession(gw.wsUrl).login({ user: "pw", database: "postgres" }, "pw-secret"), (e: { code?: string }) => e.code !== undefined);
    } finally {
      await gw.close();
    }
  });

  // GUARANTEE (passes): an unknown role and a wrong password read the same.
  test("unknown user and wrong password: the same SQLSTATE and wording", async () => {
    const gw = await startSessionGateway("host all all 127.0.0.1/32 scram-sha-256\n", cluster.port);
    try {
      const refusal = async (user: string) => {
        try {
          await new RawSession(gw.wsUrl).login({ user, database: "postgres" }, "nope");
        } catch (e) {
          const { code, message, detail, hint } = e as { code?: string; message?: string; detail?: string; hint?: string };
          return { code, message: message?.replace(user, "U"), detail, hint };
        }
        throw new Error("logged in");
      };
      assert.deepEqual(await refusal("nosuchrole"), await refusal("pw"));
    } finally {
      await gw.close();
    }
  });

  // Found by the red team, fixed: verify() takes its snapshot of the rules before asking the
  // client for its password, and the client has up to
  // HBAGATE_SESSION_AUTH_TIMEOUT_MS to answer. A reload that rejects the role
  // meanwhile (an operator revoking access) does not apply to a client already
  // at the prompt: it is let in by the old line. (PostgreSQL reads the hba
  // rules per connection as it authenticates; HTTP requests carry their
  // credentials, so their window is the verification itself.)
  test("a reload that rejects the role applies to a client still at the password prompt", async () => {
    const hba = join(dir, "reload.conf");
    await writeFile(hba, "host all pw 127.0.0.1/32 scram-sha-256\n");
    const gw: SessionGateway = await startSessionGateway("", cluster.port, { HBAGATE_HBA_FILE: hba });
    const s = new RawSession(gw.wsUrl);
    try {
      await s.opened;
      s.send(startupMessage({ user: "pw", database: "postgres" }));
      assert.ok(await s.next("R"));
      await writeFile(hba, "host all pw 127.0.0.1/32 reject\n");
      assert.equal(await gw.gateway.reload(), true);
      s.send(passwordMessage("pw-secret"));
      const e = await s.error(3000).catch(() => undefined);
      assert.equal(s.messages.some((m) => m.type === 0x5a), false, "no ReadyForQuery for a rejected role");
      assert.equal(e?.code, "28000");
    } finally {
      s.close();
      await gw.close();
    }
  });
});
