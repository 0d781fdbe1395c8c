// State across Lambda instances, in the deployed shape: the built handler,
// cold-started twice (two instances, each with its own memory), configured
// from Secrets Manager (the real SDK against the harness's endpoint), events
// as a function URL sends them, a real PostgreSQL behind.
// - The brute-force brake counts in the upstream (HBAGATE_AUTH_SHARED_TABLE
//   with the service user's password from the credentials secret): guesses
//   spread over instances lock the pair on all of them.
// - A role's secret rotated in RDS's order (the database first, AWSCURRENT
//   last) fails no request on either instance.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startFakeSecretsManager, type FakeSecretsManager } from "../harness/secrets-manager.ts";
import { buildHandler, deployedEnvironment, errorOf, functionUrlEvent, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

const LOCK_AFTER = 4;

describe("Lambda instances sharing what they must", () => {
  let cluster: Cluster;
  let secrets: FakeSecretsManager;
  let one: Handler;
  let two: Handler;
  const consoleLog = console.log;
  const saved = { ...process.env };
  const rds = (password: string) => JSON.stringify({ username: "app", password, engine: "postgres" });

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role hbagate login password 'svc-pw'; grant create on schema public to hbagate;
      create role alice login password 'right-alice'; create role app login password 'app-0';`);
    await cluster.writeHba("host all hbagate,alice,app 127.0.0.1/32 scram-sha-256\n", { reload: true });
    secrets = await startFakeSecretsManager();
    secrets.put("hbagate/rules", JSON.stringify({ hba: "hostssl all alice 0.0.0.0/0 scram-sha-256\nhostssl all app 0.0.0.0/0 trust\n", ident: "" }));
    secrets.put("db/app", rds("app-0"));
    secrets.put("hbagate/credentials", JSON.stringify({ roles: JSON.stringify({ hbagate: "svc-pw", app: `secretsmanager:${secrets.arn("db/app")}` }) }));
    Object.assign(process.env, {
      ...deployedEnvironment(secrets, cluster.port),
      // As infra/gateway.ts deploys it with HBAGATE_DEPLOY_SERVICE_USER.
      HBAGATE_SERVICE_USER: "hbagate",
      HBAGATE_AUTH_SHARED_TABLE: "hbagate_failures",
      HBAGATE_AUTH_LOCK_AFTER: String(LOCK_AFTER),
      HBAGATE_AUTH_SLOW_AFTER: "100",
      // New logins every few hundred milliseconds, as a long rotation window would see.
      HBAGATE_MAX_LIFETIME: "0.3",
    });
    console.log = () => {};
    const bundle = await buildHandler();
    const coldStart = async (n: number) => ((await import(`${pathToFileURL(bundle).href}?instance=${n}`)) as { handler: Handler }).handler;
    [one, two] = [await coldStart(1), await coldStart(2)];
  });
  after(async () => {
    console.log = consoleLog;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    await secrets?.close();
    await cluster?.stop();
  });

  const ask = async (h: Handler, user: string, password = "") => {
    const r = await h(functionUrlEvent({ query: "select current_user as u" }, { headers: { authorization: basic(user, password) } }));
    return r.statusCode === 200 ? "200" : `${r.statusCode} ${errorOf(r)?.code}`;
  };

  test("guesses spread over two instances lock the pair on both", async () => {
    for (const h of [one, two, one, two]) assert.equal(await ask(h, "alice", "wrong"), "401 28P01");
    assert.equal(await ask(one, "alice", "right-alice"), "429 08004");
    assert.equal(await ask(two, "alice", "right-alice"), "429 08004");
  });

  test("RDS's rotation order (database first, AWSCURRENT last) fails no request on either instance", async () => {
    const answers: string[] = [];
    const traffic = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) for (const h of [one, two]) answers.push(await ask(h, "app"));
    };
    await traffic(500);
    secrets.putPending("db/app", rds("app-1"));
    await cluster.sql.unsafe(`alter role app password 'app-1'`);
    await traffic(1500);
    secrets.finishRotation("db/app");
    await traffic(1500);
    assert.ok(answers.length > 20, `${answers.length} answers`);
    assert.deepEqual(answers.filter((a) => a !== "200"), []);
  });
});
