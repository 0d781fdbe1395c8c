// Every failure path with distinctive passwords, checked by upstream login and
// against a verifier file (whose stored forms count as secrets too): none of
// them may appear in a log line, an error body or a response header.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic } from "../harness/http.ts";

const SECRETS = {
  alice: "Zq-alice-7f3c9e",
  wrong: "Zq-wrong-a1b2c3",
  verifier: "Zq-verifier-44d1",
  roleLiteral: "Zq-rolelit-9090",
  neon: "Zq-neon-pass-5e5e",
} as const;
/** What a verifier file stores for vic, whose password is the verifier secret too. */
const STORED_MD5 = "md5" + createHash("md5").update(SECRETS.verifier + "vic").digest("hex");

describe("credentials never leak", () => {
  let cluster: Cluster;
  let gateway: RunningGateway;
  /** The same rules, passwords checked against a verifier file instead of upstream logins. */
  let verifying: RunningGateway;
  let verifierPath: string;
  const logs: LogEvent[] = [];
  const seen: string[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(
      `create role alice login password '${SECRETS.alice}'; create role svc login password 'other-than-configured'; create role vera login password '${SECRETS.verifier}'`,
    );
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    const dir = mkdtempSync(join(tmpdir(), "hbagate-leaks-"));
    writeFileSync(
      join(dir, "pg_hba.conf"),
      ["host all alice 127.0.0.1/32 scram-sha-256", "host all svc 127.0.0.1/32 trust", "host all all 127.0.0.1/32 scram-sha-256", "host all all ::1/128 reject"].join("\n") + "\n",
    );
    // svc's configured upstream password is wrong: the upstream refuses it.
    writeFileSync(join(dir, "roles.json"), JSON.stringify({ svc: SECRETS.roleLiteral }));
    gateway = await startNodeGateway(
      nodeSettings({
        HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
        HBAGATE_ROLE_CREDENTIALS_FILE: join(dir, "roles.json"),
        HBAGATE_VERIFIED_TTL_MS: "0",
      }, cluster.port),
      logs,
    );
    // vera's password in clear (PgBouncer's plain form), vic's as an MD5 hash of the same string.
    verifierPath = join(dir, "users.txt");
    writeFileSync(verifierPath, `"vera" "${SECRETS.verifier}"\n"vic" "${STORED_MD5}"\n`);
    verifying = await startNodeGateway(
      nodeSettings({
        HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
        HBAGATE_VERIFIER_FILE: verifierPath,
        HBAGATE_VERIFIED_TTL_MS: "0",
      }, cluster.port),
      logs,
    );
  });
  after(async () => {
    await gateway?.close();
    await verifying?.close();
    await cluster?.stop();
  });

  async function call(path: string, headers: Record<string, string>, body: string, to = gateway) {
    const res = await fetch(`${to.urls[0]}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const text = await res.text();
    seen.push(text, JSON.stringify([...res.headers]));
    return { status: res.status, text };
  }

  test("every failure path answers without the password", async () => {
    const q = '{"query":"select 1"}';
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("alice", SECRETS.wrong) }, q)).status, 401);
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("mallory", SECRETS.wrong) }, q)).status, 401);
    assert.equal((await call("/v1/nosuchdb/sql", { authorization: basic("alice", SECRETS.alice) }, q)).status >= 400, true);
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("svc", SECRETS.wrong) }, q)).status, 401, "the upstream refused the configured password");
    assert.equal((await call("/v1/postgres/sql", { authorization: `Basic ${SECRETS.wrong}` }, q)).status, 400);
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("alice", SECRETS.alice) }, '{"query":')).status, 400);
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("alice", SECRETS.alice) }, '{"query":"select * from nope"}')).status, 400);
    const neon = (password: string, db = "postgres") => ({ "neon-connection-string": `postgresql://alice:${password}@somewhere.example/${db}?sslmode=require` });
    assert.equal((await call("/sql", neon(SECRETS.neon), q)).status, 400);
    assert.equal((await call("/sql", neon(SECRETS.alice, "nosuchdb"), q)).status, 400);
    assert.equal((await call("/sql", { "neon-connection-string": `not a url ${SECRETS.neon}` }, q)).status, 400);
    // And a success, whose logs and answer must be clean too.
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("alice", SECRETS.alice) }, q)).status, 200);
  });

  test("every verifier-file path answers without the stored secrets", async () => {
    const q = '{"query":"select current_user as u"}';
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("vera", SECRETS.wrong) }, q, verifying)).status, 401);
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("vic", SECRETS.wrong) }, q, verifying)).status, 401);
    // An MD5 hash cannot satisfy scram-sha-256 (PostgreSQL's rule), even with the right password.
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("vic", SECRETS.verifier) }, q, verifying)).status, 401);
    assert.equal((await call("/v1/postgres/sql", { authorization: basic("mallory", SECRETS.verifier) }, q, verifying)).status, 401);
    const vera = await call("/v1/postgres/sql", { authorization: basic("vera", SECRETS.verifier) }, q, verifying);
    assert.equal(vera.status, 200, "a success, whose logs and answer must be clean too");
    // A reload of a broken file (each bad line holding a secret) is refused with its lines named.
    writeFileSync(verifierPath, `"vera" "${SECRETS.verifier}\n"vic" "${STORED_MD5}0"\n`);
    assert.equal(await verifying.reload(), false);
    for (const line of [1, 2]) assert.ok(logs.some((l) => typeof l.error === "string" && l.error.startsWith(`${verifierPath}:${line}: `)), JSON.stringify(logs.slice(-4)));
    writeFileSync(verifierPath, `"vera" "${SECRETS.verifier}"\n"vic" "${STORED_MD5}"\n`);
    assert.equal(await verifying.reload(), true);
  });

  test("no password in any log line, body or header", () => {
    assert.ok(logs.length > 0, "failures were logged");
    const everything = JSON.stringify(logs) + seen.join("\n");
    for (const [name, secret] of Object.entries({ ...SECRETS, storedMd5: STORED_MD5 })) assert.ok(!everything.includes(secret), `${name} leaked`);
    // Not even base64-encoded, as the Authorization header carried it.
    for (const secret of Object.values(SECRETS)) assert.ok(!everything.includes(Buffer.from(secret).toString("base64").slice(0, 12)));
  });
});
