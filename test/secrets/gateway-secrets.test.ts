// The Node gateway configured from Secrets Manager (the real SDK client against
// the fake endpoint in test/harness), with a real PostgreSQL behind: rules and
// credentials from secrets, cache hits, rotation mid-traffic, stale values
// through throttling and outages, a broken rules secret refused on reload.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Context } from "hono";
import { loadSettings, type Settings } from "../../lib/config/settings.ts";
import type { LogEvent } from "../../lib/log.ts";
import { lambdaPeer } from "../../lib/lambda/peer.ts";
import { assembleGateway } from "../../lib/gateway/assemble.ts";
import { nodePlatform } from "../../lib/node/platform.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { clientConnectionsOpen } from "../harness/process.ts";
import { Responses } from "../harness/responses.ts";
import { fakeClient, startFakeSecretsManager, type FakeSecretsManager } from "../harness/secrets-manager.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic, postSqlTo } from "../harness/http.ts";

const TTL_MS = 1000;
/** Made by PostgreSQL 15 for the password "correct horse" (as in test/auth/verifier-file.test.ts). */
const SCRAM_CORRECT_HORSE =
  "SCRAM-SHA-256$4096:fUyABb+KhZgeWGvP7KBuqA==$SGHdutvOIWg5aMJ0tbmQWUrDjx/9bXunXw8VTgXBrKE=:5eXGm6CnxyxQqYAX8oGJs/32fLzsBkzvdMYSuUXm38A=";
/** The rules the gateway starts with: each of the other secrets has a line that needs it. */
const START_HBA = ["host all vf 127.0.0.1/32 scram-sha-256", "local all svc peer map=iam", "host all svc,late 127.0.0.1/32 trust"].join("\n") + "\n";
/** Only for letting time itself pass (a TTL running out), never to wait for something to happen. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("configuration and credentials from Secrets Manager", () => {
  /** Every response the tests get (through this fetch and the Lambda app below), searched for the secrets at the end. */
  const responses = new Responses();
  const fetch = responses.fetch();
  let cluster: Cluster;
  let sm: FakeSecretsManager;
  let gateway: RunningGateway;
  let settings: Settings;
  const logs: LogEvent[] = [];
  let svcPassword = "svc-pw-1";

  // One JSON secret carries every configuration text.
  const config = (hba: string) =>
    JSON.stringify({
      hba,
      ident: "iam  arn:aws:iam::123456789012:user/ci/deploy-bot  svc\n",
      // vf's password for callers; upstream, vf logs in with its own (roles, below).
      verifier: `"vf" "${SCRAM_CORRECT_HORSE}"\n`,
      roles: JSON.stringify({ svc: "secretsmanager:gw/svc-db", late: "secretsmanager:gw/late-db", vf: "vf-upstream-pw" }),
    });
  const rds = (password: string) =>
    JSON.stringify({ username: "svc", password, host: "db.internal", port: 5432, dbname: "postgres", engine: "postgres" });

  before(async () => {
    [cluster, sm] = await Promise.all([startCluster(), startFakeSecretsManager()]);
    await cluster.sql.unsafe(`create role svc login password '${svcPassword}'; create role late login password 'late-pw'; create role vf login password 'vf-upstream-pw'`);
    await cluster.writeHba("host all svc,late,vf 127.0.0.1/32 scram-sha-256\n", { reload: true });
    sm.put("gw/config", config(START_HBA));
    sm.put("gw/svc-db", rds(svcPassword));
    settings = nodeSettings({
      HBAGATE_HBA_FILE: "secretsmanager:gw/config#hba",
      HBAGATE_ROLE_CREDENTIALS_FILE: "secretsmanager:gw/config#roles",
      HBAGATE_IDENT_FILE: "secretsmanager:gw/config#ident",
      HBAGATE_VERIFIER_FILE: "secretsmanager:gw/config#verifier",
      HBAGATE_SECRETS_TTL_MS: String(TTL_MS),
      HBAGATE_SECRETS_TIMEOUT_MS: "500",
      HBAGATE_POOL_MAX: "2",
    }, cluster.port);
    gateway = await startNodeGateway(settings, logs, fakeClient(sm.endpoint));
  });
  after(async () => {
    await gateway?.close();
    await Promise.all([cluster?.stop(), sm?.close()]);
  });

  const ask = async (query = "select current_user as u", user = "svc", password = "") => {
    return postSqlTo(gateway.urls[0]!, { query }, { headers: { authorization: basic(user, password) }, fetch });
  };
  const callsFor = (id: string) => sm.calls.filter((c) => c.secretId === id).length;
  const secretsCheck = async () => ((await (await fetch(`${gateway.urls[0]}/readyz`)).json()) as { checks: { secrets: string } }).checks.secrets;

  test("rules and an RDS-shaped credential come from secrets", async () => {
    assert.ok(logs.every((l) => l.msg !== "invalid configuration"), JSON.stringify(logs));
    const r = await ask();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ u: "svc" }]);
  });

  test("within the TTL, requests cost no calls to the service", async () => {
    const before = sm.calls.length;
    for (let i = 0; i < 20; i++) assert.equal((await ask()).status, 200);
    assert.ok(sm.calls.length - before <= 1, `${sm.calls.length - before} calls for 20 requests`);
  });

  test("a password line checks the verifier file from the secret, not an upstream login", async () => {
    const right = await ask(undefined, "vf", "correct horse");
    assert.equal(right.status, 200, JSON.stringify(right.body));
    assert.deepEqual(right.body.rows, [{ u: "vf" }]);
    // vf's upstream password would pass an upstream login; the verifier file does not know it.
    const upstream = await ask(undefined, "vf", "vf-upstream-pw");
    assert.deepEqual([upstream.status, upstream.body.error?.code], [401, "28P01"], JSON.stringify(upstream.body));
  });

  test("a peer line maps the platform's principal through the ident map from the secret", async () => {
    // Only Lambda's IAM requests name a system user: the same settings and secrets, assembled with its peer.
    const platform = nodePlatform(settings, {
      peer: (c: Context) => lambdaPeer((c.env as { requestContext?: unknown } | undefined)?.requestContext),
      secretsClient: fakeClient(sm.endpoint),
    });
    const lambda = await assembleGateway(settings, (e) => logs.push(e), platform, { defaultHba: undefined });
    assert.ok(lambda, JSON.stringify(logs.slice(-5)));
    responses.app(lambda.app);
    try {
      const askAs = async (principal: string) => {
        const requestContext = { authorizer: { iam: { userArn: `arn:aws:iam::123456789012:user/ci/${principal}` } } };
        const res = await lambda.app.request(
          "/v1/postgres/sql",
          { method: "POST", headers: { "content-type": "application/json", authorization: basic("svc") }, body: '{"query":"select current_user as u"}' },
          { requestContext },
        );
        return { status: res.status, body: (await res.json()) as Record<string, any> };
      };
      // The map names deploy-bot's whole ARN: it may be svc; without the map, no principal could.
      const mapped = await askAs("deploy-bot");
      assert.equal(mapped.status, 200, JSON.stringify(mapped.body));
      assert.deepEqual(mapped.body.rows, [{ u: "svc" }]);
      const unmapped = await askAs("someone-else");
      assert.deepEqual([unmapped.status, unmapped.body.error?.message], [403, 'Peer authentication failed for user "svc"'], JSON.stringify(unmapped.body));
    } finally {
      await lambda.close();
    }
  });

  test("rotation mid-traffic: the database refuses the old password, the secret is fetched again, no request fails", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      if (i === 10) {
        svcPassword = "svc-pw-2";
        sm.put("gw/svc-db", rds(svcPassword));
        await cluster.sql.unsafe(`alter role svc password '${svcPassword}'`);
        // New logins are needed to meet the new password: end the pooled sessions.
        const ended = await cluster.sql<{ pid: number; port: number }[]>`select pid, client_port as port from pg_stat_activity where usename = 'svc'`;
        assert.ok(ended.length > 0, "svc has pooled sessions to end");
        await cluster.sql`select pg_terminate_backend(pid) from unnest(${ended.map((e) => e.pid)}::int[]) pid`;
        // Wait until the gateway has closed its side of each (it has seen them end), rather than for a guessed 100 ms.
        await eventually(() => clientConnectionsOpen(cluster.port, ended.map((e) => e.port)) === 0, { what: "the gateway to close svc's ended sessions" });
      }
      statuses.push((await ask()).status);
    }
    assert.deepEqual(statuses, Array(30).fill(200));
    assert.ok(logs.some((l) => String(l.msg).includes("fetching the secret again")));
  });

  test("throttling and outages: the last good values keep serving, /readyz says they are stale", async () => {
    const burst = async () => (await Promise.all(Array.from({ length: 40 }, () => ask()))).map((r) => r.status);
    try {
      sm.fail("throttle");
      // A refresh of each secret has been throttled...
      await eventually(async () => {
        const text = await secretsCheck();
        return /^ok \(stale: /.test(text) && text.includes("gw/config: Rate exceeded") && text.includes("gw/svc-db: Rate exceeded");
      }, { what: "throttled refreshes of both secrets" });
      // ...so the last successful fetch was before now. The point: let every value pass its TTL.
      await sleep(TTL_MS);
      assert.deepEqual(await burst(), Array(40).fill(200), "throttled: stale values under load");
      sm.fail("down");
      // A refresh of each has now met the outage (its error is no longer the throttle's).
      await eventually(async () => {
        const text = await secretsCheck();
        return /^ok \(stale: /.test(text) && text.includes("gw/config: ") && text.includes("gw/svc-db: ") && !text.includes("Rate exceeded");
      }, { what: "refreshes of both secrets to meet the outage" });
      assert.deepEqual(await burst(), Array(40).fill(200), "down: stale values under load");
      const ready = await fetch(`${gateway.urls[0]}/readyz`);
      const body = (await ready.json()) as { checks: { secrets: string } };
      assert.equal(ready.status, 200);
      assert.match(body.checks.secrets, /^ok \(stale: /);
    } finally {
      sm.fail(null);
    }
    // Refreshes back off, but no slower than the TTL: the service's return is noticed
    // within a few TTLs (a backoff past the TTL would take longer than this bound).
    await eventually(async () => (await secretsCheck()) === "ok", { timeoutMs: 5 * TTL_MS, intervalMs: 50, what: "the secrets to be fresh again" });
  });

  test("a credential secret never fetched while the service is down: a clear 503, then it works once it exists", async () => {
    sm.fail("down");
    try {
      const r = await ask(undefined, "late");
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, "08001");
      assert.equal(r.body.error.message, "a configuration secret is unavailable");
    } finally {
      sm.fail(null);
    }
    sm.put("gw/late-db", JSON.stringify({ username: "late", password: "late-pw" }));
    // Works once it exists (bounded only to catch it never working).
    await eventually(async () => (await ask(undefined, "late")).status === 200, { timeoutMs: 30_000, intervalMs: 100, what: "late's requests to succeed" });
  });

  test("a rules secret with no rules (emptied, or commented out) is refused; the old rules stay", async () => {
    for (const hba of ["", "# host all svc,late 127.0.0.1/32 trust\n"]) {
      const before = logs.length;
      sm.put("gw/config", config(hba));
      // The next refresh (within the TTL) brings the new version and the reload refuses it.
      await eventually(
        () => logs.slice(before).some((l) => l.error === 'secretsmanager:gw/config#hba:1: configuration file "secretsmanager:gw/config#hba" contains no entries'),
        { timeoutMs: 30_000, what: `the refusal of ${JSON.stringify(hba)} in the log` },
      );
      assert.equal((await ask()).status, 200, "the old rules are in force");
    }
  });

  test("a broken rules secret is refused with the old rules still enforced; a good one is taken", async () => {
    // Its valid line refuses svc: had that half been applied, svc would be out.
    sm.put("gw/config", config("host all svc 127.0.0.1/32 reject\nhost all all all bogus\n"));
    await eventually(() => logs.some((l) => l.error === 'secretsmanager:gw/config#hba:2: invalid authentication method "bogus"'), {
      timeoutMs: 30_000,
      what: "the refusal of the broken rules in the log",
    });
    const kept = await ask();
    assert.equal(kept.status, 200, `the old rules are in force: ${JSON.stringify(kept.body)}`);
    sm.put("gw/config", config("host all svc 127.0.0.1/32 reject\n"));
    // Taken at the next refresh: until then the old rules still let svc in.
    const refused = await eventually(async () => {
      const r = await ask();
      return r.status === 200 ? undefined : r;
    }, { timeoutMs: 30_000, intervalMs: 50, what: "the good rules to be taken" });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /^pg_hba.conf rejects connection/);
  });

  test("never fetched and the service down: a clear 503, and a start without rules does not happen", async () => {
    sm.fail("down");
    try {
      const settings = nodeSettings({
        HBAGATE_HBA_FILE: "secretsmanager:gw/other#hba",
        HBAGATE_SECRETS_TIMEOUT_MS: "300",
      }, cluster.port);
      const noRules = await startGateway(settings, () => {}, fakeClient(sm.endpoint));
      assert.equal(noRules, undefined);
    } finally {
      sm.fail(null);
    }
  });

  test("no secret value ever reaches the log, a response body or a header", async () => {
    const text = JSON.stringify(logs);
    const secrets = ["svc-pw-1", "svc-pw-2", "late-pw", "vf-upstream-pw", "correct horse", SCRAM_CORRECT_HORSE.split("$")[2]!];
    for (const secret of secrets) assert.ok(!text.includes(secret), secret);
    assert.ok(responses.count > 20, `every request's response was recorded (${responses.count})`);
    const answered = await responses.text();
    // Not even as the Authorization header carried the callers' ones.
    const carried = ["vf:correct horse", "vf:vf-upstream-pw"].map((c) => Buffer.from(c).toString("base64"));
    for (const secret of [...secrets, ...carried]) assert.ok(!answered.includes(secret), `${secret} in a response`);
  });
});
