// Each framing decodes the credentials it was sent into the caller, and the
// matched line's method decides what they are worth: a Bearer header is a
// token, never a malformed Basic one refused before the rules run. Against a
// real PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "./deps.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { testApp } from "../harness/gateway.ts";

const RULES = [
  "host all app 10.0.0.0/8 trust",
  "host all pw 10.0.0.0/8 scram-sha-256",
  "host all tok 10.0.0.0/8 oauth issuer=https://issuer.example scope=openid",
  "host all nobody 10.0.0.0/8 reject",
].join("\n");

describe("credentials as each framing decodes them", () => {
  let cluster: Cluster;
  let pools: Pools;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login; create role pw login password 'right'; create role tok login; create role nobody login`);
    await cluster.writeHba("host all pw 127.0.0.1/32 scram-sha-256\nhost all app,tok,nobody 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const appFor = (anonymousUser: string | undefined, fallback?: string) =>
    testApp(pools, RULES, { caller: { anonymousUser, bearerRole: { claim: "role", fallback } } });
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  /** An unsigned-looking token: its role claim picks the line; only an oauth line would verify it. */
  const tokenFor = (claims: Record<string, unknown>) => ({ authorization: `Bearer ${b64({ alg: "ES256" })}.${b64({ sub: "x", ...claims })}.c2ln` });
  const bearer = tokenFor({});

  test("/v1 with a Bearer token: the role is its role claim, and the rules run for that role (a trust line admits)", async () => {
    const r = await postSql(appFor(undefined), { query: "select current_user as u" }, tokenFor({ role: "app" }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ u: "app" }]);
    // No role claim: the configured default role; never the anonymous user.
    const fallback = await postSql(appFor("nobody", "app"), { query: "select current_user as u" }, bearer);
    assert.deepEqual([fallback.status, fallback.body.rows], [200, [{ u: "app" }]], JSON.stringify(fallback.body));
  });

  test("/v1 with a Bearer token where the line wants a password: the method's own refusal (28P01), not a malformed header", async () => {
    const r = await postSql(appFor(undefined), { query: "select 1" }, tokenFor({ role: "pw" }));
    assert.deepEqual([r.status, r.body.error?.code, r.body.error?.message], [401, "28P01", 'password authentication failed for user "pw"']);
  });

  test("/v1 with a Bearer token on an oauth line without OAuth on the runtime: 08001 (fail closed), and a reject line's own wording", async () => {
    const oauth = await postSql(appFor(undefined), { query: "select 1" }, tokenFor({ role: "tok" }));
    assert.deepEqual([oauth.status, oauth.body.error?.code], [503, "08001"], JSON.stringify(oauth.body));
    const reject = await postSql(appFor(undefined), { query: "select 1" }, tokenFor({ role: "nobody" }));
    assert.match(reject.body.error?.message, /^pg_hba.conf rejects connection/);
  });

  test("a Bearer token naming no role, with no default role: 'no user name' (the anonymous user is not used)", async () => {
    const r = await postSql(appFor("app"), { query: "select 1" }, bearer);
    assert.deepEqual([r.status, r.body.error?.code, r.body.error?.message], [403, "28000", "no PostgreSQL user name specified"]);
  });

  test("malformed headers are still refused with a clear message: Bearer without a token, an unknown scheme", async () => {
    for (const authorization of ["Bearer", "Bearer a b", "Digest x"]) {
      const r = await postSql(appFor("app"), { query: "select 1" }, { authorization });
      assert.equal(r.body.error?.code, "08P01", authorization);
      assert.match(r.body.error?.message, /^malformed Authorization header/, authorization);
    }
  });

  test("/sql: Neon's connection string names the user, a Bearer header rides beside it; a password and a token together are refused", async () => {
    const app = appFor(undefined);
    const sql = (user: string, password: string | undefined, headers: Record<string, string>) =>
      app.request("/sql", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "neon-connection-string": `postgresql://${user}${password === undefined ? "" : `:${password}`}@gateway.example/postgres`,
          ...headers,
        },
        body: JSON.stringify({ query: "select current_user as u", params: [] }),
      });
    const trusted = await sql("app", undefined, bearer);
    assert.equal(trusted.status, 200, await trusted.clone().text());
    const withPassword = await sql("pw", "right", bearer);
    const both = (await withPassword.json()) as { code?: string; message?: string };
    assert.deepEqual([withPassword.status, both.code, both.message], [400, "28000", "a password and a bearer token together are refused"]);
    assert.equal((await sql("pw", "right", {})).status, 200);
    const tokenOnly = await sql("pw", undefined, bearer);
    const body = (await tokenOnly.json()) as { code?: string; message?: string };
    assert.equal(body.code, "28P01", JSON.stringify(body));
  });
});
