// Every failure path with distinctive passwords: none of them may appear in a
// log line, an error body or a response header.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadSettings } from "../../lib/config/settings.ts";
import type { LogEvent } from "../../lib/http/app.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

const SECRETS = {
  alice: "Zq-alice-7f3c9e",
  wrong: "Zq-wrong-a1b2c3",
  verifier: "Zq-verifier-44d1",
  roleLiteral: "Zq-rolelit-9090",
  neon: "Zq-neon-pass-5e5e",
} as const;

describe("credentials never leak", () => {
  let cluster: Cluster;
  let gateway: RunningGateway;
  const logs: LogEvent[] = [];
  const seen: string[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role alice login password '${SECRETS.alice}'; create role svc login password 'other-than-configured'`);
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    const dir = mkdtempSync(join(tmpdir(), "hbagate-leaks-"));
    writeFileSync(
      join(dir, "pg_hba.conf"),
      ["host all alice 127.0.0.1/32 scram-sha-256", "host all svc 127.0.0.1/32 trust", "host all all 127.0.0.1/32 scram-sha-256", "host all all ::1/128 reject"].join("\n") + "\n",
    );
    // svc's configured upstream password is wrong: the upstream refuses it.
    writeFileSync(join(dir, "roles.json"), JSON.stringify({ svc: SECRETS.roleLiteral }));
    const started = await startGateway(
      loadSettings({
        HBAGATE_PORT: "0",
        HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
        HBAGATE_ROLE_CREDENTIALS_FILE: join(dir, "roles.json"),
        HBAGATE_UPSTREAM_HOST: "127.0.0.1",
        HBAGATE_UPSTREAM_PORT: String(cluster.port),
        HBAGATE_VERIFIED_TTL_MS: "0",
      }),
      (e) => logs.push(e),
    );
    assert.ok(started);
    gateway = started;
  });
  after(async () => {
    await gateway?.close();
    await cluster?.stop();
  });

  async function call(path: string, headers: Record<string, string>, body: string) {
    const res = await fetch(`${gateway.urls[0]}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const text = await res.text();
    seen.push(text, JSON.stringify([...res.headers]));
    return { status: res.status, text };
  }
  const basic = (user: string, password: string) => ({ authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64") });

  test("every failure path answers without the password", async () => {
    const q = '{"query":"select 1"}';
    assert.equal((await call("/v1/postgres/sql", basic("alice", SECRETS.wrong), q)).status, 401);
    assert.equal((await call("/v1/postgres/sql", basic("mallory", SECRETS.wrong), q)).status, 401);
    assert.equal((await call("/v1/nosuchdb/sql", basic("alice", SECRETS.alice), q)).status >= 400, true);
    assert.equal((await call("/v1/postgres/sql", basic("svc", SECRETS.wrong), q)).status, 401, "the upstream refused the configured password");
    assert.equal((await call("/v1/postgres/sql", { authorization: `Basic ${SECRETS.wrong}` }, q)).status, 400);
    assert.equal((await call("/v1/postgres/sql", basic("alice", SECRETS.alice), '{"query":')).status, 400);
    assert.equal((await call("/v1/postgres/sql", basic("alice", SECRETS.alice), '{"query":"select * from nope"}')).status, 400);
    const neon = (password: string, db = "postgres") => ({ "neon-connection-string": `postgresql://alice:${password}@somewhere.example/${db}?sslmode=require` });
    assert.equal((await call("/sql", neon(SECRETS.neon), q)).status, 400);
    assert.equal((await call("/sql", neon(SECRETS.alice, "nosuchdb"), q)).status, 400);
    assert.equal((await call("/sql", { "neon-connection-string": `not a url ${SECRETS.neon}` }, q)).status, 400);
    // And a success, whose logs and answer must be clean too.
    assert.equal((await call("/v1/postgres/sql", basic("alice", SECRETS.alice), q)).status, 200);
  });

  test("no password in any log line, body or header", () => {
    assert.ok(logs.length > 0, "failures were logged");
    const everything = JSON.stringify(logs) + seen.join("\n");
    for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!everything.includes(secret), `${name} leaked`);
    // Not even base64-encoded, as the Authorization header carried it.
    for (const secret of Object.values(SECRETS)) assert.ok(!everything.includes(Buffer.from(secret).toString("base64").slice(0, 12)));
  });
});
