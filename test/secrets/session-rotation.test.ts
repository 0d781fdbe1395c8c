// A WebSocket session's upstream login with a role's password from Secrets
// Manager, mid-rotation (the real SDK against the endpoint in test/harness, a
// real PostgreSQL behind): a session opened while AWSCURRENT is refused logs
// in with the version the database has (AWSPENDING in RDS's order,
// AWSPREVIOUS in the other), as a request's pool does (rotation-orders).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@neondatabase/serverless";
import { startRotatingRole, type RotatingRole } from "../harness/rotation.ts";
import { pointNeonAt } from "../harness/sessions.ts";

const TTL_MS = 1000;

describe("a session's login with a role's secret mid-rotation", () => {
  let role: RotatingRole;

  before(async () => {
    role = await startRotatingRole({ HBAGATE_SECRETS_TTL_MS: String(TTL_MS), HBAGATE_SECRETS_TIMEOUT_MS: "1000" });
    pointNeonAt({ authority: new URL(role.gateway.urls[0]!).host });
  });
  after(async () => {
    await role?.close();
  });

  /** A new session's answer to current_user, or its error's SQLSTATE. */
  const session = async (): Promise<string> => {
    const client = new Client({ connectionString: "postgres://app:unused@db.example/postgres" });
    client.on("error", () => {});
    try {
      await client.connect();
      const r = await client.query("select current_user as u");
      return String(r.rows[0].u);
    } catch (err) {
      return String((err as { code?: string }).code ?? err);
    } finally {
      await client.end().catch(() => {});
    }
  };
  /** Until the gateway's cached value of db/app has expired and been read again (its next login asks for it). */
  const pastTtl = () => new Promise((r) => setTimeout(r, TTL_MS + 50)); // time under test: the secret's TTL

  test("before any rotation, a session logs in with AWSCURRENT", async () => {
    assert.equal(await session(), "app");
  });

  test("the other order: AWSCURRENT moved before the database; a new session logs in with AWSPREVIOUS", async () => {
    role.sm.put("db/app", role.rds("pw-1"));
    await pastTtl();
    const since = role.sm.calls.length;
    assert.equal(await session(), "app");
    assert.ok(role.fetchedStage("AWSPREVIOUS", since), "the previous version was asked for");
    await role.alterPassword("pw-1");
    // The database caught up: the password proven before is refused now, and AWSCURRENT is proven.
    assert.equal(await session(), "app");
  });

  test("RDS's order: the database took AWSPENDING's password before AWSCURRENT moved; a new session logs in with it", async () => {
    role.sm.putPending("db/app", role.rds("pw-2"));
    await role.alterPassword("pw-2");
    await pastTtl();
    const since = role.sm.calls.length;
    assert.equal(await session(), "app");
    assert.ok(role.fetchedStage("AWSPENDING", since), "the pending version was asked for");
    role.sm.finishRotation("db/app");
    await pastTtl();
    assert.equal(await session(), "app");
  });

  test("a password no version has: the session is refused (28P01), and works again once a version has it", async () => {
    await role.alterPassword("pw-unknown");
    assert.equal(await session(), "28P01");
    await role.alterPassword("pw-2");
    assert.equal(await session(), "app");
  });
});
