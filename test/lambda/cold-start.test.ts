// A cold start whose configuration lives in Secrets Manager (the deployed
// shape: secretsmanager: references, the real SDK client against the
// harness's endpoint). Secrets Manager down or slow is the gateway's own
// 08001/503 per request, and retried on a later one: never an initialisation
// error (which only the platform would report) and never an initialisation
// near Lambda's 10 s limit.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startFakeSecretsManager, type FakeSecretsManager } from "../harness/secrets-manager.ts";
import { buildHandler, deployedEnvironment, errorOf, functionUrlEvent, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

describe("a cold start with Secrets Manager unreachable", () => {
  let cluster: Cluster;
  let secrets: FakeSecretsManager;
  let bundle: string;
  let instances = 0;
  const logs: string[] = [];
  const consoleLog = console.log;

  /** A new instance: the bundle's module scope run again (a fresh copy of the module), as a cold start does. */
  async function coldStart(): Promise<{ handler: Handler; initMs: number }> {
    const started = Date.now();
    const { handler } = (await import(`${pathToFileURL(bundle).href}?instance=${++instances}`)) as { handler: Handler };
    return { handler, initMs: Date.now() - started };
  }
  const request = (handler: Handler) => handler(functionUrlEvent({ query: "select current_user as u" }, { headers: { authorization: basic("app") } }));

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    secrets = await startFakeSecretsManager();
    secrets.put("hbagate/rules", JSON.stringify({ hba: "hostssl all app 0.0.0.0/0 trust\n", ident: "" }));
    secrets.put("hbagate/credentials", JSON.stringify({ roles: "{}" }));
    Object.assign(process.env, {
      ...deployedEnvironment(secrets, cluster.port),
    });
    bundle = await buildHandler();
    console.log = (...args: unknown[]) => {
      logs.push(args.map(String).join(" "));
    };
  });
  after(async () => {
    console.log = consoleLog;
    await secrets?.close();
    await cluster?.stop();
  });

  test("down: initialisation completes, requests are 08001/503, and a later request loads the configuration", async () => {
    secrets.fail("down");
    const { handler } = await coldStart(); // before: threw, and Lambda answered its own error
    for (let i = 0; i < 2; i++) {
      const r = await request(handler);
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(errorOf(r)?.code, "08001");
    }
    assert.ok(logs.some((l) => l.includes("no configuration yet")), logs.join("\n"));
    secrets.fail(null);
    // Time itself, not a wait for something: past HBAGATE_CONFIG_RETRY_MS (1 s), before which no new attempt is made.
    await new Promise((r) => setTimeout(r, 1100));
    const ok = await request(handler);
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual((JSON.parse(ok.body) as { rows: unknown[] }).rows, [{ u: "app" }]);
  });

  test("slow: initialisation and each request's attempt are bounded by HBAGATE_SECRETS_TIMEOUT_MS (3 s), not Lambda's 10 s", async () => {
    secrets.fail({ delayMs: 8000 });
    const { handler, initMs } = await coldStart();
    assert.ok(initMs < 4500, `initialisation took ${initMs} ms`);
    // Time itself: past HBAGATE_CONFIG_RETRY_MS (1 s), so this request makes an attempt of its own.
    await new Promise((r) => setTimeout(r, 1100));
    const started = Date.now();
    const r = await request(handler);
    const took = Date.now() - started;
    assert.equal(r.statusCode, 503, r.body);
    assert.equal(errorOf(r)?.code, "08001");
    assert.ok(took < 4500, `the request's attempt took ${took} ms`);
    secrets.fail(null);
    // Time itself, not a wait for something: past HBAGATE_CONFIG_RETRY_MS (1 s), before which no new attempt is made.
    await new Promise((r) => setTimeout(r, 1100));
    const ok = await request(handler);
    assert.equal(ok.statusCode, 200, ok.body);
  });

  test("no log line holds a secret's text", () => {
    for (const l of logs) assert.doesNotMatch(l, /hostssl all app/);
  });
});
