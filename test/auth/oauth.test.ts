// The oauth method against a throwaway HTTPS issuer (discovery document and
// JWKS over TLS from a throwaway CA, keys per run) and a real PostgreSQL:
// what passes, every refusal PostgreSQL's validator duties call for (each
// 28000, the token never in the log), key rotation mid-traffic, and issuer
// outages (fail closed when never fetched; known keys ride an outage out).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SignJWT } from "jose";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { memorySource } from "../../lib/config/source.ts";
import { createApp } from "../../lib/http/app.ts";
import { loadIdent } from "../../lib/ident/ident.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { oauthSettings, startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testDeps, testPools } from "../http/deps.ts";
import { testApp } from "../harness/gateway.ts";
import { endUserApp, startTodos, type Todos } from "../harness/todos-rls.ts";

const AUDIENCE = "hbagate-test";
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("oauth: bearer tokens validated against the line's issuer", () => {
  let cluster: Cluster;
  let pools: Pools;
  let issuer: Issuer;
  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe("create role app login; create role mapped login; create role delegated login");
    await cluster.writeHba("host all app,mapped,delegated 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await issuer?.stop();
    await cluster?.stop();
  });

  const rules = (url: string) =>
    [
      `host all app 10.0.0.0/8 oauth issuer=${url} scope="openid db"`,
      `host all mapped 10.0.0.0/8 oauth issuer=${url} scope=openid map=people`,
      `host all delegated 10.0.0.0/8 oauth issuer=${url} scope=openid delegate_ident_mapping=1`,
    ].join("\n");
  const ident = loadIdent("/rules/pg_ident.conf", memorySource({ "/rules/pg_ident.conf": "people alice@example.net mapped\n" }));

  /** A gateway whose oauth lines name `url`, fetching with the test CA. */
  const gateway = (url = issuer.url, options: { leewaySeconds?: number; cacheMs?: number; lockAfter?: number } = {}) => {
    const deps = testDeps(pools, rules(url), {
      caller: { anonymousUser: undefined, bearerRole: { claim: "role", fallback: undefined } },
      ident: () => ident,
      verifiedCallers: new VerifiedCallers({ ttlMs: options.cacheMs ?? 0, maxEntries: 100 }),
      ...(options.lockAfter !== undefined
        ? { failureLimiter: new FailureLimiter({ slowAfter: 100, lockAfter: options.lockAfter, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 100 }) }
        : {}),
    });
    const oauth = oauthSettings(issuer, deps.log, { audience: AUDIENCE, leewaySeconds: options.leewaySeconds ?? 0 });
    const app = createApp({ ...deps, oauth });
    return { app, logs: deps.logs };
  };
  const ask = (app: ReturnType<typeof gateway>["app"], token: string) => postSql(app, { query: "select current_user as u" }, { authorization: `Bearer ${token}` });
  const good = { sub: "app", role: "app", aud: AUDIENCE, scope: "openid db profile" };

  test("a valid token: the role its claim names, identity = role; through map=; and with delegate_ident_mapping=1", async () => {
    const { app } = gateway();
    const r = await ask(app, await issuer.sign(good));
    assert.deepEqual([r.status, r.body.rows], [200, [{ u: "app" }]], JSON.stringify(r.body));
    const mapped = await ask(app, await issuer.sign({ sub: "alice@example.net", role: "mapped", aud: AUDIENCE, scp: ["openid"] }));
    assert.deepEqual([mapped.status, mapped.body.rows], [200, [{ u: "mapped" }]], JSON.stringify(mapped.body));
    const delegated = await ask(app, await issuer.sign({ sub: "anyone", role: "delegated", aud: [AUDIENCE, "other"], scope: "openid" }));
    assert.deepEqual([delegated.status, delegated.body.rows], [200, [{ u: "delegated" }]], JSON.stringify(delegated.body));
  });

  test("refused, each with 28000 and PostgreSQL's words, and never the token in the log", async () => {
    const { app, logs } = gateway();
    const key = issuer.keys[0]!;
    const valid = await issuer.sign(good);
    const [h, p] = valid.split(".");
    const pem = JSON.stringify(key.publicJwk);
    const cases: [string, string][] = [
      ["expired", await issuer.sign({ ...good, exp: now() - 3600 })],
      ["not yet valid", await issuer.sign({ ...good, nbf: now() + 3600 })],
      ["wrong issuer", await issuer.sign({ ...good, iss: "https://evil.example" })],
      ["wrong audience", await issuer.sign({ ...good, aud: "someone-else" })],
      ["no audience", await issuer.sign({ sub: "app", role: "app", scope: "openid db" })],
      ["missing scope", await issuer.sign({ ...good, scope: "openid" })],
      ["no exp", await new SignJWT({ ...good, iss: issuer.url }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)],
      ["alg none", `${b64({ alg: "none", kid: key.kid })}.${p}.`],
      ["HS256 with the public key's bytes", await new SignJWT(good).setProtectedHeader({ alg: "HS256", kid: key.kid }).setIssuer(issuer.url).setExpirationTime("1h").sign(new TextEncoder().encode(pem))],
      ["tampered payload", `${h}.${b64({ ...good, iss: issuer.url, exp: now() + 3600, sub: "app", scope: "openid db admin" })}.${valid.split(".")[2]}`],
      ["a key the issuer never published", await issuer.sign(good, { key: { ...key, kid: "not-published" } })],
      ["map does not allow the role", await issuer.sign({ sub: "bob@example.net", role: "mapped", aud: AUDIENCE, scope: "openid" })],
      ["identity is not the role", await issuer.sign({ ...good, sub: "somebody-else" })],
    ];
    for (const [name, token] of cases) {
      const r = await ask(app, token);
      const role = name === "map does not allow the role" ? "mapped" : "app";
      assert.deepEqual([r.status, r.body.error?.code, r.body.error?.message], [403, "28000", `OAuth bearer authentication failed for user "${role}"`], `${name}: ${JSON.stringify(r.body)}`);
    }
    // Not a JWT at all: it names no role, so no line can be picked.
    const garbage = await ask(app, "abc.def.ghi");
    assert.deepEqual([garbage.status, garbage.body.error?.message], [403, "no PostgreSQL user name specified"]);
    const logged = JSON.stringify(logs);
    for (const [name, token] of cases) {
      for (const part of token.split(".").filter((x) => x.length > 20)) assert.ok(!logged.includes(part), `${name}: a part of the token is in the log`);
    }
  });

  test("a line's issuer never reached: 08001 (503), fail closed; known keys ride out an outage", async () => {
    const dead = gateway("https://localhost:1");
    const r = await ask(dead.app, await issuer.sign(good));
    assert.deepEqual([r.status, r.body.error?.code], [503, "08001"], JSON.stringify(r.body));

    const live = gateway();
    assert.equal((await ask(live.app, await issuer.sign(good))).status, 200);
    issuer.down = true;
    try {
      const during = await ask(live.app, await issuer.sign(good));
      assert.deepEqual([during.status, during.body.rows], [200, [{ u: "app" }]], JSON.stringify(during.body));
    } finally {
      issuer.down = false;
    }
  });

  test("rotation mid-traffic: a token under a new key makes one refetch and passes; no request fails", async () => {
    const { app } = gateway();
    const before = issuer.fetches.get("/jwks") ?? 0;
    assert.equal((await ask(app, await issuer.sign(good))).status, 200);
    const results: number[] = [];
    let rotated = false;
    const traffic = (async () => {
      for (let i = 0; i < 30; i++) {
        // Old-key tokens until the issuer has rotated, then tokens under the new key.
        results.push((await ask(app, await issuer.sign(good))).status);
      }
    })();
    const rotation = (async () => {
      await new Promise((r) => setTimeout(r, 20));
      await issuer.newKey();
      rotated = true;
    })();
    await Promise.all([traffic, rotation]);
    assert.ok(rotated);
    assert.deepEqual(results.filter((s) => s !== 200), []);
    assert.equal((await ask(app, await issuer.sign(good))).status, 200);
    // The first fetch and one refetch for the new kid; not one per request.
    assert.equal((issuer.fetches.get("/jwks") ?? 0) - before, 2);
  });

  test("a token without a kid while the issuer publishes two keys (a rotation's overlap): either key's token passes", async () => {
    const { app } = gateway();
    const older = issuer.keys[0]!;
    const newer = await issuer.newKey();
    for (const key of [older, newer]) {
      const r = await ask(app, await issuer.sign(good, { key, header: { kid: undefined } }));
      assert.deepEqual([r.status, r.body.rows], [200, [{ u: "app" }]], `${key.kid}: ${JSON.stringify(r.body)}`);
    }
  });

  test("refused tokens do not lock a role out: junk naming the role leaves the brake alone for everyone behind the address", async () => {
    const { app } = gateway(issuer.url, { lockAfter: 3 });
    const [h, p] = (await issuer.sign(good)).split(".");
    for (let i = 0; i < 10; i++) {
      const r = await ask(app, `${h}.${p}.${Buffer.from(`junk-${i}`).toString("base64url")}`);
      assert.deepEqual([r.status, r.body.error?.code], [403, "28000"]);
    }
    const ok = await ask(app, await issuer.sign({ ...good, sub: "app" }));
    assert.deepEqual([ok.status, ok.body.rows], [200, [{ u: "app" }]], JSON.stringify(ok.body));
  });

  test("a cached verification never outlives the token; a small leeway on exp is honoured", async () => {
    const { app } = gateway(issuer.url, { cacheMs: 60_000 });
    const short = await issuer.sign({ ...good, exp: now() + 2 });
    assert.equal((await ask(app, short)).status, 200);
    await new Promise((r) => setTimeout(r, 3100));
    const late = await ask(app, short);
    assert.deepEqual([late.status, late.body.error?.code], [403, "28000"], "an expired token was served from the cache");

    const lenient = gateway(issuer.url, { leewaySeconds: 30 });
    assert.equal((await ask(lenient.app, await issuer.sign({ ...good, exp: now() - 10 }))).status, 200);
    assert.equal((await ask(lenient.app, await issuer.sign({ ...good, exp: now() - 60 }))).status, 403);
  });
});

describe("oauth: verified claims reach SQL for row-level security, and never outlive their request", () => {
  let todos: Todos;
  let pools: Pools;
  before(async () => {
    todos = await startTodos();
    // One connection: every request below runs on the same server session.
    pools = testPools(todos.cluster.port, { max: 1 });
  });
  after(async () => {
    await pools?.close();
    await todos?.stop();
  });

  test("two end users of one role, through one pooled connection, each see only their own rows; a forged claim or role does not reach the next request", async () => {
    const { run } = endUserApp(todos, pools);
    const mine = async (sub: string) => (await run(sub, { query: "select item, pg_backend_pid() as pid from todos order by item" })).body;

    for (const [sub, item] of [["alice", "a1"], ["bob", "b1"], ["alice", "a2"]] as const) {
      const r = await run(sub, { query: "insert into todos values ($1, $2)", params: [sub, item] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    // Writing a row for someone else is refused by the policy's check.
    const forgedInsert = await run("bob", { query: "insert into todos values ('alice', 'from bob')" });
    assert.equal(forgedInsert.body.error?.code, "42501", JSON.stringify(forgedInsert.body));

    const alice = await mine("alice");
    const bob = await mine("bob");
    assert.deepEqual(alice.rows.map((r: { item: string }) => r.item), ["a1", "a2"]);
    assert.deepEqual(bob.rows.map((r: { item: string }) => r.item), ["b1"]);
    assert.equal(alice.rows[0].pid, bob.rows[0].pid, "both ran on the one pooled connection");

    // Bob leaves claims of his choosing and tries other roles on the session; Alice's next request sees only hers.
    for (const query of [
      `select set_config('request.jwt.claims', '{"sub":"alice"}', false)`,
      "set role postgres",
      "select set_config('role', 'postgres', false)",
      `select set_config('request.jwt.claims', '{"sub":"bob"}', false), set_config('request.jwt.claim.sub', 'bob', false)`,
    ]) {
      await run("bob", { query });
      const after = await mine("alice");
      assert.deepEqual(after.rows.map((r: { item: string }) => r.item), ["a1", "a2"], query);
    }
    // And a request with no token on that session carries no claims at all (after RESET ALL the
    // placeholder reads as empty, hence nullif in the policy).
    const anonymous = testApp(pools, "host all enduser 10.0.0.0/8 trust", { caller: { anonymousUser: "enduser" } });
    const bare = await postSql(anonymous, { query: "select current_setting('request.jwt.claims', true) as c, (select count(*) from todos)::int as n" });
    assert.equal(bare.status, 200, JSON.stringify(bare.body));
    assert.deepEqual(bare.body.rows, [{ c: bare.body.rows[0].c === null ? null : "", n: 0 }], JSON.stringify(bare.body));
  });
});
