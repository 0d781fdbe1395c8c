// Secrets that are there but cannot be used, on Lambda: a binary secret (the
// configuration and role credentials are text) and an RDS-managed secret for
// another user than the role it is configured for. Each is a clear error in
// the log and /readyz, and the caller's 08001/503 — never a bare
// "unavailable", a 500 or a stack trace; never a secret's value in the log.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startFakeSecretsManager, type FakeSecretsManager } from "../harness/secrets-manager.ts";
import { buildHandler, deployedEnvironment, errorOf, functionUrlEvent, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

const RDS_PASSWORD = "rds-secret-value-7f3a";
const BINARY = new Uint8Array([0x68, 0x6f, 0x73, 0x74, 0x00, 0xff, 0x10]);

describe("secrets that cannot be used", () => {
  let cluster: Cluster;
  let secrets: FakeSecretsManager;
  let bundle: string;
  let instances = 0;
  const logs: string[] = [];
  const consoleLog = console.log;

  const coldStart = async () => ((await import(`${pathToFileURL(bundle).href}?instance=${++instances}`)) as { handler: Handler }).handler;
  const request = (handler: Handler, user: string) => handler(functionUrlEvent({ query: "select current_user as u" }, { headers: { authorization: basic(user) } }));
  const readyz = async (handler: Handler) =>
    JSON.parse((await handler(functionUrlEvent(undefined, { path: "/readyz", sourceIp: "127.0.0.1" }))).body) as { checks?: Record<string, string> };
  const logged = (since: number) => logs.slice(since).join("\n");

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login; create role reporting login password '${RDS_PASSWORD}'; create role binrole login password 'x'`);
    await cluster.writeHba("host all app 127.0.0.1/32 trust\nhost all reporting,binrole 127.0.0.1/32 scram-sha-256\n", { reload: true });
    secrets = await startFakeSecretsManager();
    // An RDS-managed secret, but for another user than the role it is configured for.
    secrets.put("rds!db-other", JSON.stringify({ username: "other", password: RDS_PASSWORD, engine: "postgres", host: "127.0.0.1", port: cluster.port }));
    secrets.putBinary("binary-credential", BINARY);
    secrets.putBinary("binary-ident", BINARY);
    secrets.put("hbagate/rules", JSON.stringify({ hba: "hostssl all app,reporting,binrole 0.0.0.0/0 trust\n", ident: "" }));
    secrets.put(
      "hbagate/credentials",
      JSON.stringify({ roles: JSON.stringify({ reporting: `secretsmanager:${secrets.arn("rds!db-other")}`, binrole: `secretsmanager:${secrets.arn("binary-credential")}` }) }),
    );
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

  test("an RDS secret for another user: 08001/503 naming neither secret nor user to the caller; the log says whose it is, without a stack", async () => {
    const handler = await coldStart();
    assert.equal((await request(handler, "app")).statusCode, 200);
    const since = logs.length;
    const r = await request(handler, "reporting");
    assert.equal(r.statusCode, 503, r.body);
    assert.equal(errorOf(r)?.code, "08001");
    assert.doesNotMatch(r.body, /rds!db-other|"other"/);
    assert.match(logged(since), /is for user \\?"other\\?", not role \\?"reporting\\?"/);
    assert.doesNotMatch(logged(since), /\n\s+at |\\n\s+at /, "no stack trace");
  });

  test("a binary role credential: 08001/503, and the log and /readyz say it is binary", async () => {
    const handler = await coldStart();
    const since = logs.length;
    const r = await request(handler, "binrole");
    assert.equal(r.statusCode, 503, r.body);
    assert.equal(errorOf(r)?.code, "08001");
    assert.match(logged(since), /binary-credential[^\n]*is binary/);
    assert.match((await readyz(handler)).checks?.secrets ?? "", /binary-credential[^;]*is binary/);
  });

  test("/readyz from the public internet (a function URL's sourceIp): the status alone, none of the secrets' names or AWS's text; and no upstream connection per probe", async () => {
    const handler = await coldStart();
    await request(handler, "binrole");
    const connections = async () => Number((await cluster.sql`select count(*)::int as n from pg_stat_activity where backend_type = 'client backend'`)[0]!.n);
    const before = await connections();
    for (let i = 0; i < 20; i++) {
      const r = await handler(functionUrlEvent(undefined, { path: "/readyz", sourceIp: "198.51.100.7" }));
      assert.deepEqual(JSON.parse(r.body), { status: "not ready" });
      assert.doesNotMatch(r.body, /binary|arn:|hbagate\//);
    }
    assert.ok((await connections()) <= before, "probes opened no PostgreSQL session");
    // This machine (the function's own loopback) is told why.
    assert.match((await readyz(handler)).checks?.secrets ?? "", /is binary/);
  });

  test("a binary configuration secret: the configuration is refused with the reason, requests are 08001/503", async () => {
    const ident = process.env.HBAGATE_IDENT_FILE;
    process.env.HBAGATE_IDENT_FILE = `secretsmanager:${secrets.arn("binary-ident")}`;
    try {
      const since = logs.length;
      const handler = await coldStart();
      const r = await request(handler, "app");
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(errorOf(r)?.code, "08001");
      assert.match(logged(since), /binary-ident[^\n]*is binary/);
      assert.match((await readyz(handler)).checks?.secrets ?? "", /binary-ident[^;]*is binary/);
    } finally {
      process.env.HBAGATE_IDENT_FILE = ident;
    }
  });

  test("no log line holds a secret's value", () => {
    for (const l of logs) assert.ok(!l.includes(RDS_PASSWORD), l);
  });
});
