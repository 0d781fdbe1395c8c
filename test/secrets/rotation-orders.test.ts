// A role's upstream password rotated by Secrets Manager, mid-traffic, in both
// orders a rotation can take (the real SDK against the endpoint in
// test/harness, a real PostgreSQL behind):
// - RDS's single-user rotation: the new password goes to AWSPENDING, the
//   database is changed to it, and only then does AWSCURRENT move. In between,
//   AWSCURRENT is refused: the pending version logs in.
// - The other way round (the secret updated first, the database after): the
//   current version is refused until the database catches up; the previous
//   version logs in meanwhile.
// No request may fail in either window.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startRotatingRole, type RotatingRole } from "../harness/rotation.ts";
import { basic, postSqlTo, statusAndCode } from "../harness/http.ts";

const TTL_MS = 1000;

describe("rotation of a role's secret in either order, mid-traffic", () => {
  let role: RotatingRole;

  before(async () => {
    role = await startRotatingRole({
      HBAGATE_SECRETS_TTL_MS: String(TTL_MS),
      HBAGATE_SECRETS_TIMEOUT_MS: "1000",
      HBAGATE_POOL_MAX: "3",
      // Connections replaced every few hundred milliseconds: new logins all the time, as a
      // long rotation window would see, without ending a session under a statement.
      HBAGATE_MAX_LIFETIME: "0.3",
    });
  });
  after(async () => {
    await role?.close();
  });

  const ask = async () => {
    return statusAndCode(await postSqlTo(role.gateway.urls[0]!, { query: "select current_user as u" }, { headers: { authorization: basic("app") } }));
  };

  /** Four callers asking without pause while `steps` run; every answer, in order. */
  async function underTraffic(steps: () => Promise<void>): Promise<string[]> {
    const answers: string[] = [];
    let done = false;
    const caller = async () => {
      while (!done) answers.push(await ask());
    };
    const callers = Array.from({ length: 4 }, caller);
    try {
      await steps();
    } finally {
      done = true;
      await Promise.all(callers);
    }
    return answers;
  }

  /** Requests long enough for the secret's cached value to expire at least once, and for logins to happen. */
  const traffic = () => new Promise((r) => setTimeout(r, 1.5 * TTL_MS));

  test("RDS's order: the database takes AWSPENDING's password before AWSCURRENT moves; the pending version logs in meanwhile", async () => {
    const since = role.sm.calls.length;
    const answers = await underTraffic(async () => {
      await traffic();
      role.sm.putPending("db/app", role.rds("pw-1"));
      await role.alterPassword("pw-1");
      await traffic();
      await traffic();
      role.sm.finishRotation("db/app");
      await traffic();
      await traffic();
    });
    assert.ok(answers.length > 20, `${answers.length} answers`);
    assert.deepEqual(answers.filter((a) => a !== "200"), [], `${answers.length} answers`);
    assert.ok(role.fetchedStage("AWSPENDING", since), "the pending version was asked for");
  });

  test("the other order: AWSCURRENT moves before the database changes; the previous version logs in meanwhile", async () => {
    const since = role.sm.calls.length;
    const answers = await underTraffic(async () => {
      await traffic();
      role.sm.put("db/app", role.rds("pw-2"));
      await traffic();
      await traffic();
      await role.alterPassword("pw-2");
      await traffic();
      await traffic();
    });
    assert.ok(answers.length > 20, `${answers.length} answers`);
    assert.deepEqual(answers.filter((a) => a !== "200"), [], `${answers.length} answers`);
    assert.ok(role.fetchedStage("AWSPREVIOUS", since), "the previous version was asked for");
  });

  test("a password no version of the secret has is refused as before, and the role works again once one has it", async () => {
    await role.alterPassword("pw-unknown");
    // Past the connections' lifetime: the next request logs in.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await ask(), "401 28P01");
    await role.alterPassword("pw-2");
    assert.equal(await ask(), "200");
  });
});
