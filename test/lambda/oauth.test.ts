// Bearer tokens on Lambda: the built handler, function URL events, a throwaway
// HTTPS issuer and a real PostgreSQL. The issuer's keys are fetched once per
// instance and survive between warm invocations; a bad token is refused as on
// the Node server.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { buildHandler, errorOf, functionUrlEvent, importHandler, type Handler } from "./events.ts";

describe("bearer tokens on Lambda", () => {
  let cluster: Cluster;
  let issuer: Issuer;
  let handler: Handler;
  const consoleLog = console.log;

  before(async () => {
    const [bundle, c, i] = await Promise.all([buildHandler(), startCluster(), startIssuer()]);
    [cluster, issuer] = [c, i];
    await cluster.sql.unsafe("create role mobile login");
    await cluster.writeHba("host all mobile 127.0.0.1/32 trust\n", { reload: true });
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, `host all mobile 0.0.0.0/0 oauth issuer=${issuer.url} scope=app delegate_ident_mapping=1\n`);
    Object.assign(process.env, {
      HBAGATE_HBA_FILE: hba,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      HBAGATE_UPSTREAM_SSL: "disable",
      HBAGATE_OAUTH_CA_FILE: issuer.caFile,
      HBAGATE_OAUTH_AUDIENCE: "mobile-app",
    });
    console.log = () => {};
    try {
      handler = await importHandler(bundle);
    } finally {
      console.log = consoleLog;
    }
  });
  after(async () => {
    await issuer?.stop();
    await cluster?.stop();
  });

  const invoke = async (token: string) => {
    console.log = () => {};
    try {
      return await handler(functionUrlEvent({ query: "select current_user as u, current_setting('request.jwt.claims')::jsonb->>'sub' as sub" }, { headers: { authorization: `Bearer ${token}` } }));
    } finally {
      console.log = consoleLog;
    }
  };

  test("warm invocations reuse the issuer's keys; each runs under its own token's claims", async () => {
    const before = issuer.fetches.get("/jwks") ?? 0;
    for (const sub of ["device-1", "device-2", "device-3"]) {
      const r = await invoke(await issuer.sign({ sub, role: "mobile", aud: "mobile-app", scope: "app" }));
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(JSON.parse(r.body).rows, [{ u: "mobile", sub }]);
    }
    assert.equal((issuer.fetches.get("/jwks") ?? 0) - before, 1, "the keys were fetched once for three invocations");
  });

  test("a token for another audience is refused: 403, 28000", async () => {
    const r = await invoke(await issuer.sign({ sub: "device-1", role: "mobile", aud: "web-app", scope: "app" }));
    assert.deepEqual([r.statusCode, errorOf(r)?.code, errorOf(r)?.message], [403, "28000", 'OAuth bearer authentication failed for user "mobile"']);
  });
});
