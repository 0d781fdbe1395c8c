// The brute-force brake across Lambda instances under a burst, and the
// service login's own password rotating (found by a red team; each test
// failed before its fix).
// - Lambda runs one request per instance: N concurrent guesses land on N
//   instances at once. Each verification is counted in the shared table before
//   it runs (one statement, under the row's lock), so no more than the limit
//   are verified however many instances race.
// - The service user's password from an RDS secret, rotated in RDS's order:
//   its login is retried with AWSPENDING like a role's, so a +group line
//   (membership needs the service login) fails no request on an instance
//   cold-started inside the rotation window; a service login refused for good
//   is the gateway's 08001, never the service role's name in a 401.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startFakeSecretsManager, type FakeSecretsManager } from "../harness/secrets-manager.ts";
import { buildHandler, deployedEnvironment, errorOf, functionUrlEvent, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

const LOCK_AFTER = 4;
const INSTANCES = 12;

describe("Lambda instances: the shared brake under a burst, the service login rotating", () => {
  let cluster: Cluster;
  let secrets: FakeSecretsManager;
  let bundle: string;
  let n = 0;
  const consoleLog = console.log;
  const logs: string[] = [];
  const saved = { ...process.env };
  const rds = (user: string, password: string) => JSON.stringify({ username: user, password, engine: "postgres" });
  const coldStart = async () => ((await import(`${pathToFileURL(bundle).href}?instance=${++n}`)) as { handler: Handler }).handler;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role hbagate login password 'svc-0'; grant create on schema public to hbagate;
      create role staff nologin;
      create role alice login password 'right-alice';
      create role bob login password 'bob-pw' in role staff;`);
    await cluster.writeHba("host all hbagate,alice,bob 127.0.0.1/32 scram-sha-256\n", { reload: true });
    secrets = await startFakeSecretsManager();
    secrets.put("hbagate/rules", JSON.stringify({ hba: "hostssl all alice 0.0.0.0/0 scram-sha-256\nhostssl all +staff 0.0.0.0/0 trust\n", ident: "" }));
    secrets.put("db/hbagate", rds("hbagate", "svc-0"));
    secrets.put("hbagate/credentials", JSON.stringify({ roles: JSON.stringify({ hbagate: `secretsmanager:${secrets.arn("db/hbagate")}`, bob: "bob-pw" }) }));
    Object.assign(process.env, {
      ...deployedEnvironment(secrets, cluster.port),
      HBAGATE_SERVICE_USER: "hbagate",
      HBAGATE_AUTH_SHARED_TABLE: "hbagate_failures",
      HBAGATE_AUTH_LOCK_AFTER: String(LOCK_AFTER),
      HBAGATE_AUTH_SLOW_AFTER: "100",
    });
    console.log = (...a: unknown[]) => void logs.push(a.map(String).join(" "));
    bundle = await buildHandler();
  });
  after(async () => {
    console.log = consoleLog;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    await secrets?.close();
    await cluster?.stop();
  });

  const instances: Handler[] = [];
  const ask = async (h: Handler, user: string, password = "") => {
    const r = await h(functionUrlEvent({ query: "select current_user as u" }, { headers: { authorization: basic(user, password) } }));
    return r.statusCode === 200 ? "200" : `${r.statusCode} ${errorOf(r)?.code}`;
  };

  test(`a burst of ${INSTANCES} concurrent guesses over ${INSTANCES} instances verifies at most ${LOCK_AFTER} of them`, async () => {
    for (let i = 0; i < INSTANCES; i++) instances.push(await coldStart());
    // Warm each instance (its service connection and the table), as a busy function's are.
    for (const h of instances) assert.equal(await ask(h, "bob"), "200");
    const answers = await Promise.all(instances.map((h, i) => ask(h, "alice", `guess-${i}`)));
    const verified = answers.filter((a) => a === "401 28P01").length;
    assert.ok(verified <= LOCK_AFTER, `${verified} guesses were verified (lock after ${LOCK_AFTER}): ${answers.join(", ")}`);
  });

  test("a guess that is right, inside such a burst, is refused once the pair has reached its limit", async () => {
    // Another client address: its own pair; the same (warm) instances.
    const guess = (h: Handler, i: number) =>
      h(functionUrlEvent({ query: "select 1" }, { sourceIp: "203.0.113.9", headers: { authorization: basic("alice", i === INSTANCES - 1 ? "right-alice" : `wrong-${i}`) } })).then((r) => r.statusCode);
    const statuses = await Promise.all(instances.map(guess));
    const wrongVerified = statuses.slice(0, -1).filter((s) => s === 401).length;
    assert.ok(!(wrongVerified >= LOCK_AFTER && statuses.at(-1) === 200), `${wrongVerified} wrong guesses verified and the right one still let in: ${statuses.join(", ")}`);
  });

  test("the service user's secret rotated in RDS's order: an instance cold-started in the window fails no request", async () => {
    // RDS's order: the new password is AWSPENDING and set in the database; AWSCURRENT still the old one.
    secrets.putPending("db/hbagate", rds("hbagate", "svc-1"));
    await cluster.sql.unsafe(`alter role hbagate password 'svc-1'`);
    const fresh = await coldStart();
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await fresh(functionUrlEvent({ query: "select current_user as u" }, { headers: { authorization: basic("bob") } }));
      answers.push(r.statusCode === 200 ? "200" : `${r.statusCode} ${r.body}`);
    }
    secrets.finishRotation("db/hbagate");
    assert.deepEqual(answers.filter((a) => a !== "200"), [], answers.join(", "));
  });

  test("a service login refused by every version of its secret: 08001/503 for the caller, the role's name only in the log", async () => {
    await cluster.sql.unsafe(`alter role hbagate password 'svc-unknown'`);
    try {
      const fresh = await coldStart();
      const r = await fresh(functionUrlEvent({ query: "select 1" }, { headers: { authorization: basic("bob") } }));
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(errorOf(r)?.code, "08001");
      assert.doesNotMatch(r.body, /hbagate/);
    } finally {
      await cluster.sql.unsafe(`alter role hbagate password 'svc-1'`);
    }
  });
});
