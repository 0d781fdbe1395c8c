// Red team, end to end: with both caches on (payload cache, verified-caller cache under Node's MAC), a
// forged token that copies a valid token's payload, tokens of two users interleaved, and a payload
// seen before under another header must each be judged on their own; request.jwt.claims is each token's.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { nodeMac } from "../../lib/node/node-mac.ts";
import { createApp } from "../../lib/http/app.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { oauthSettings, startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testDeps, testPools } from "../http/deps.ts";

const AUDIENCE = "hbagate-test";
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("red: oauth with both caches on", () => {
  let cluster: Cluster;
  let pools: Pools;
  let issuer: Issuer;
  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe("create role app login; create role boss login");
    await cluster.writeHba("host all app,boss 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await issuer?.stop();
    await cluster?.stop();
  });

  test("forged copies, interleaved users and reused payloads never borrow another token's verification", async () => {
    const deps = testDeps(pools, `host all app,boss 10.0.0.0/8 oauth issuer=${issuer.url} scope=openid delegate_ident_mapping=1`, {
      caller: { anonymousUser: undefined, bearerRole: { claim: "role", fallback: undefined } },
      verifiedCallers: new VerifiedCallers({ ttlMs: 60_000, maxEntries: 100, mac: nodeMac() }),
    });
    const app = createApp({ ...deps, oauth: oauthSettings(issuer, deps.log, { audience: AUDIENCE, leewaySeconds: 0 }) });
    const ask = async (token: string) => {
      const r = await postSql(app, { query: "select current_user as u, current_setting('request.jwt.claims', true) as c" }, { authorization: `Bearer ${token}` });
      return r.status === 200 ? { u: r.body.rows[0].u, sub: JSON.parse(r.body.rows[0].c).sub } : { status: r.status, code: r.body.error?.code };
    };
    const alice = await issuer.sign({ sub: "alice", role: "app", aud: AUDIENCE, scope: "openid" });
    const boss = await issuer.sign({ sub: "carol", role: "boss", aud: AUDIENCE, scope: "openid" });
    const [ah, ap, as] = alice.split(".");
    const [, bp, bs] = boss.split(".");
    const denied = { status: 403, code: "28000" };
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(await ask(alice), { u: "app", sub: "alice" });
      assert.deepEqual(await ask(boss), { u: "boss", sub: "carol" });
      // boss's payload under alice's signature (and under its own: the same header text), alice's under boss's, an edited payload.
      assert.deepEqual(await ask(`${ah}.${bp}.${as}`), denied);
      assert.deepEqual(await ask(`${ah}.${bp}.${bs}`), { u: "boss", sub: "carol" });
      assert.deepEqual(await ask(`${ah}.${ap}.${bs}`), denied);
      assert.deepEqual(await ask(`${ah}.${b64({ ...JSON.parse(Buffer.from(ap!, "base64url").toString()), role: "boss" })}.${as}`), denied);
      // Padding and a different header text for the same payload: a different token, verified on its own.
      assert.deepEqual(await ask(`${ah}.${ap}.${as}=`), denied);
      assert.deepEqual(await ask(`${b64({ alg: "none" })}.${ap}.`), denied);
    }
  });
});
