// A WebSocket session's upstream login with a role's password from Secrets
// Manager, mid-rotation (the real SDK against the endpoint in test/harness, a
// real PostgreSQL behind): a session opened while AWSCURRENT is refused logs
// in with the version the database has (AWSPENDING in RDS's order,
// AWSPREVIOUS in the other), as a request's pool does (rotation-orders).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@neondatabase/serverless";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { fakeClient, startFakeSecretsManager, type FakeSecretsManager } from "../harness/secrets-manager.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { neonConfig } from "@neondatabase/serverless";
import WebSocket from "ws";

const TTL_MS = 1000;

describe("a session's login with a role's secret mid-rotation", () => {
  let cluster: Cluster;
  let sm: FakeSecretsManager;
  let gateway: RunningGateway;
  const logs: LogEvent[] = [];
  const rds = (password: string) => JSON.stringify({ username: "app", password, host: "db.internal", port: 5432, dbname: "postgres", engine: "postgres" });

  before(async () => {
    [cluster, sm] = await Promise.all([startCluster(), startFakeSecretsManager()]);
    await cluster.sql.unsafe(`create role app login password 'pw-0'`);
    await cluster.writeHba("host all app 127.0.0.1/32 scram-sha-256\n", { reload: true });
    sm.put("db/app", rds("pw-0"));
    sm.put("gw/config", JSON.stringify({ hba: "host all app 127.0.0.1/32 trust\n", roles: JSON.stringify({ app: "secretsmanager:db/app" }) }));
    const settings = nodeSettings(
      {
        HBAGATE_HBA_FILE: "secretsmanager:gw/config#hba",
        HBAGATE_ROLE_CREDENTIALS_FILE: "secretsmanager:gw/config#roles",
        HBAGATE_SECRETS_TTL_MS: String(TTL_MS),
        HBAGATE_SECRETS_TIMEOUT_MS: "1000",
      },
      cluster.port,
    );
    gateway = await startNodeGateway(settings, logs, fakeClient(sm.endpoint));
    const authority = new URL(gateway.urls[0]!).host;
    neonConfig.webSocketConstructor = WebSocket;
    neonConfig.useSecureWebSocket = false;
    neonConfig.wsProxy = () => `${authority}/v2`;
    neonConfig.pipelineConnect = "password";
  });
  after(async () => {
    await gateway?.close();
    await Promise.all([cluster?.stop(), sm?.close()]);
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
  const alterPassword = (password: string) => cluster.sql.unsafe(`alter role app password '${password}'`);
  const fetchedStage = (stage: string, since: number) => sm.calls.slice(since).some((c) => c.secretId === "db/app" && c.versionStage === stage);
  /** Until the gateway's cached value of db/app has expired and been read again (its next login asks for it). */
  const pastTtl = () => new Promise((r) => setTimeout(r, TTL_MS + 50)); // time under test: the secret's TTL

  test("before any rotation, a session logs in with AWSCURRENT", async () => {
    assert.equal(await session(), "app");
  });

  test("the other order: AWSCURRENT moved before the database; a new session logs in with AWSPREVIOUS", async () => {
    sm.put("db/app", rds("pw-1"));
    await pastTtl();
    const since = sm.calls.length;
    assert.equal(await session(), "app");
    assert.ok(fetchedStage("AWSPREVIOUS", since), "the previous version was asked for");
    await alterPassword("pw-1");
    // The database caught up: the password proven before is refused now, and AWSCURRENT is proven.
    assert.equal(await session(), "app");
  });

  test("RDS's order: the database took AWSPENDING's password before AWSCURRENT moved; a new session logs in with it", async () => {
    sm.putPending("db/app", rds("pw-2"));
    await alterPassword("pw-2");
    await pastTtl();
    const since = sm.calls.length;
    assert.equal(await session(), "app");
    assert.ok(fetchedStage("AWSPENDING", since), "the pending version was asked for");
    sm.finishRotation("db/app");
    await pastTtl();
    assert.equal(await session(), "app");
  });

  test("a password no version has: the session is refused (28P01), and works again once a version has it", async () => {
    await alterPassword("pw-unknown");
    assert.equal(await session(), "28P01");
    await alterPassword("pw-2");
    assert.equal(await session(), "app");
  });
});
