// Where passwords cannot be proved by an upstream login, the gateway says so
// before a caller finds out: the embedded PGlite (which checks none) refuses
// password lines without a verifier file, and an upstream that lets the
// service user in with a wrong password is reported at start and in /readyz.
import assert from "node:assert/strict";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { startEmbeddedUpstream } from "../../lib/upstream/embedded.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic, postSqlTo } from "../harness/http.ts";
import { eventually } from "../harness/eventually.ts";


async function ask(url: string, auth: string): Promise<{ status: number; body: Record<string, any> }> {
  return postSqlTo(url, '{"query":"select 1 as one"}', { headers: { authorization: auth } });
}

describe("the embedded upstream", () => {
  const dir = mkdtempSync(join(tmpdir(), "hbagate-embedded-"));

  test("is served on a Unix socket in a directory only this user can enter, never on TCP", async () => {
    const upstream = await startEmbeddedUpstream();
    try {
      assert.ok(upstream.host.startsWith("/"), upstream.host);
      assert.equal(statSync(upstream.host).mode & 0o777, 0o700);
      assert.ok(statSync(join(upstream.host, `.s.PGSQL.${upstream.port}`)).isSocket());
    } finally {
      await upstream.close();
    }
  });

  test("password lines without a verifier file stop the start, naming file and line", async () => {
    const hba = join(dir, "pw.conf");
    writeFileSync(hba, "host all all 127.0.0.1/32 trust\nhost all all ::1/128 scram-sha-256\n");
    const logs: LogEvent[] = [];
    const started = await startGateway(nodeSettings({ HBAGATE_HBA_FILE: hba }), (e) => logs.push(e));
    if (started) await started.close();
    assert.equal(started, undefined);
    const error = logs.find((e) => e.msg === "invalid configuration");
    assert.match(String(error?.error), new RegExp(`${hba}:2: "scram-sha-256" needs HBAGATE_VERIFIER_FILE`));
  });

  test("a reload to password lines without a verifier file is refused; the running rules stay", async () => {
    const hba = join(dir, "reload.conf");
    writeFileSync(hba, "host all all 127.0.0.1/32 trust\n");
    const logs: LogEvent[] = [];
    const gateway = await startNodeGateway(nodeSettings({ HBAGATE_HBA_FILE: hba }), logs);
    try {
      writeFileSync(hba, "host all all 127.0.0.1/32 md5\n");
      assert.equal(await gateway.reload(), false);
      assert.match(String(logs.find((e) => e.msg === "invalid configuration")?.error), /"md5" needs HBAGATE_VERIFIER_FILE/);
      assert.equal((await ask(gateway.urls[0]!, basic("anyone", ""))).status, 200, "the trust rules are still in force");
    } finally {
      await gateway.close();
    }
  });

  test("with a verifier file they check passwords for real", async () => {
    const hba = join(dir, "pw2.conf");
    writeFileSync(hba, "host all all 127.0.0.1/32 password\n");
    const users = join(dir, "users.txt");
    writeFileSync(users, '"dev" "dev-secret"\n');
    const logs: LogEvent[] = [];
    const gateway = await startNodeGateway(nodeSettings({ HBAGATE_HBA_FILE: hba, HBAGATE_VERIFIER_FILE: users }), logs);
    try {
      const url = gateway.urls[0]!;
      assert.equal((await ask(url, basic("dev", "dev-secret"))).status, 200);
      const wrong = await ask(url, basic("dev", "nope"));
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, "28P01");
      assert.equal((await ask(url, basic("nosuchuser", "x"))).status, 401);
    } finally {
      await gateway.close();
    }
  });
});

describe("an upstream that does not check the service user's password", () => {
  let cluster: Cluster;
  const dir = mkdtempSync(join(tmpdir(), "hbagate-probe-"));
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role svc login password 'svc-pw'");
  });
  after(() => cluster?.stop());

  async function start(upstreamHba: string): Promise<{ gateway: RunningGateway; logs: LogEvent[] }> {
    await cluster.writeHba(upstreamHba, { reload: true });
    const hba = join(dir, "pg_hba.conf");
    writeFileSync(hba, "host all all 127.0.0.1/32 scram-sha-256\n");
    const logs: LogEvent[] = [];
    const gateway = await startNodeGateway(nodeSettings({ HBAGATE_HBA_FILE: hba, HBAGATE_SERVICE_USER: "svc", HBAGATE_SERVICE_PASSWORD: "svc-pw" }, cluster.port), logs);
    return { gateway, logs };
  }

  test("is reported at start and in /readyz, which stays ready", async () => {
    const { gateway, logs } = await start("host all all 127.0.0.1/32 trust\n");
    try {
      await eventually(() => logs.some((e) => e.msg?.toString().startsWith("the upstream accepted a wrong password for the service user")));
      const ready = await fetch(`${gateway.urls[0]}/readyz`);
      const body = (await ready.json()) as { checks: Record<string, string> };
      assert.equal(ready.status, 200);
      assert.match(body.checks.passwords ?? "", /^ok \(warning: the upstream let "svc" in with a wrong password/);
      assert.ok(!JSON.stringify(logs).includes("svc-pw"), "the service password is never logged");
    } finally {
      await gateway.close();
    }
  });

  test("is not reported when the upstream asks for passwords", async () => {
    const { gateway, logs } = await start("host all all 127.0.0.1/32 scram-sha-256\n");
    try {
      // The probe's refused login is in the upstream's log once it has run.
      await eventually(async () => /password authentication failed for user "svc"/.test(await cluster.readLog()));
      const body = (await (await fetch(`${gateway.urls[0]}/readyz`)).json()) as { checks: Record<string, string> };
      assert.equal(body.checks.passwords, undefined);
      assert.ok(!logs.some((e) => e.level === "warn"), JSON.stringify(logs));
    } finally {
      await gateway.close();
    }
  });
});
