// The oauth method as the Node server assembles it from settings: the issuer's
// CA from HBAGATE_OAUTH_CA_FILE, the audience, the default role for /v1, over
// a real listener; without the CA the issuer cannot be verified and the line
// fails closed (08001).
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadSettings } from "../../lib/config/settings.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import type { LogEvent } from "../../lib/log.ts";
import { startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

describe("oauth on the Node server, from settings", () => {
  let cluster: Cluster;
  let issuer: Issuer;
  const gateways: RunningGateway[] = [];
  const logs: LogEvent[] = [];
  let dir: string;
  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe("create role webapp login");
    await cluster.writeHba("host all webapp 127.0.0.1/32 trust\n", { reload: true });
    dir = mkdtempSync(join(tmpdir(), "hbagate-oauth-node-"));
    writeFileSync(join(dir, "pg_hba.conf"), `host all webapp 127.0.0.1/32 oauth issuer=${issuer.url} scope=api delegate_ident_mapping=1\n`);
  });
  after(async () => {
    for (const g of gateways) await g.close();
    await issuer?.stop();
    await cluster?.stop();
  });

  const start = async (extra: Record<string, string>) => {
    const g = await startGateway(
      loadSettings({
        HBAGATE_PORT: "0",
        HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
        HBAGATE_UPSTREAM_HOST: "127.0.0.1",
        HBAGATE_UPSTREAM_PORT: String(cluster.port),
        HBAGATE_OAUTH_AUDIENCE: "my-api",
        ...extra,
      }),
      (e) => logs.push(e),
    );
    assert.ok(g, JSON.stringify(logs.slice(-3)));
    gateways.push(g);
    return (token: string) =>
      fetch(`${g.urls[0]}/v1/postgres/sql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: "select current_user as u, current_setting('request.jwt.claims')::jsonb->>'sub' as sub" }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));
  };

  test("with the issuer's CA: a token without a role claim takes HBAGATE_OAUTH_DEFAULT_ROLE; the audience is enforced", async () => {
    const ask = await start({ HBAGATE_OAUTH_CA_FILE: issuer.caFile, HBAGATE_OAUTH_DEFAULT_ROLE: "webapp", HBAGATE_OAUTH_ROLE_CLAIM: "db_role" });
    const ok = await ask(await issuer.sign({ sub: "u-1", db_role: "webapp", aud: "my-api", scope: "api" }));
    assert.deepEqual([ok.status, ok.body.rows], [200, [{ u: "webapp", sub: "u-1" }]], JSON.stringify(ok.body));
    // No role claim: the default role, and delegate_ident_mapping then finds no claim naming it.
    const noClaim = await ask(await issuer.sign({ sub: "u-2", aud: "my-api", scope: "api" }));
    assert.deepEqual([noClaim.status, noClaim.body.error?.code], [403, "28000"], JSON.stringify(noClaim.body));
    const wrongAudience = await ask(await issuer.sign({ sub: "u-1", db_role: "webapp", aud: "other", scope: "api" }));
    assert.deepEqual([wrongAudience.status, wrongAudience.body.error?.code], [403, "28000"]);
  });

  test("oauth lines without HBAGATE_OAUTH_AUDIENCE: the start says that tokens for any audience pass", async () => {
    const warning = "oauth lines are in force but HBAGATE_OAUTH_AUDIENCE is not set: tokens the issuer minted for any audience are accepted";
    const seen = logs.length;
    await start({ HBAGATE_OAUTH_CA_FILE: issuer.caFile });
    assert.ok(!logs.slice(seen).some((e) => e.msg === warning), "not with an audience");
    const g = await startGateway(
      loadSettings({ HBAGATE_PORT: "0", HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"), HBAGATE_UPSTREAM_HOST: "127.0.0.1", HBAGATE_UPSTREAM_PORT: String(cluster.port) }),
      (e) => logs.push(e),
    );
    assert.ok(g);
    gateways.push(g);
    assert.ok(logs.slice(seen).some((e) => e.level === "warn" && e.msg === warning));
  });

  test("without the CA the issuer's certificate is not trusted: 08001, fail closed", async () => {
    const ask = await start({});
    const r = await ask(await issuer.sign({ sub: "u-1", role: "webapp", aud: "my-api", scope: "api" }));
    assert.deepEqual([r.status, r.body.error?.code], [503, "08001"], JSON.stringify(r.body));
    assert.ok(logs.some((e) => e.msg === "fetching the OAuth issuer's keys failed"));
  });

  test("a verification under way across a reload is not remembered for the new line (the token must pass the new line's checks)", async () => {
    const hba = join(dir, "reload.conf");
    writeFileSync(hba, `host all webapp 127.0.0.1/32 oauth issuer=${issuer.url} scope=api delegate_ident_mapping=1\n`);
    const g = await startGateway(
      loadSettings({ HBAGATE_PORT: "0", HBAGATE_HBA_FILE: hba, HBAGATE_UPSTREAM_HOST: "127.0.0.1", HBAGATE_UPSTREAM_PORT: String(cluster.port), HBAGATE_OAUTH_CA_FILE: issuer.caFile }),
      (e) => logs.push(e),
    );
    assert.ok(g);
    gateways.push(g);
    const ask = (token: string) =>
      fetch(`${g.urls[0]}/v1/postgres/sql`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify({ query: "select 1 as n" }) }).then((r) => r.status);
    const weak = await issuer.sign({ sub: "u-1", role: "webapp", scope: "api" }); // lacks "admin"
    issuer.jwksDelayMs = 1000;
    try {
      const inFlight = ask(weak);
      await new Promise((r) => setTimeout(r, 300));
      // The operator tightens the line while that verification waits for the keys.
      writeFileSync(hba, `host all webapp 127.0.0.1/32 oauth issuer=${issuer.url} scope="api admin" delegate_ident_mapping=1\n`);
      assert.equal(await g.reload(), true);
      assert.equal(await inFlight, 200, "the request that began under the old line is judged by it");
    } finally {
      issuer.jwksDelayMs = 0;
    }
    assert.equal(await ask(weak), 403, "the same token after the reload must meet the new line");
  });
});
