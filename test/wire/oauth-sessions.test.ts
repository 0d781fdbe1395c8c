// An oauth line over a session: the client sends its bearer token when asked
// for a password (as PostgreSQL 18's libpq clients do without an OAuth flow),
// the gateway verifies it against the issuer, and the session runs with the
// token's verified claims in request.jwt.claims. Many end users share one
// role, so one end user's sessions are bounded apart from the role's
// (HBAGATE_SESSIONS_MAX_PER_IDENTITY, half the role's by default).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@neondatabase/serverless";
import { startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { pointNeonAt, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";

describe("oauth bearer tokens over sessions", () => {
  let cluster: Cluster;
  let issuer: Issuer;
  let gw: SessionGateway;
  const open: Client[] = [];

  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe("create role webapp login");
    await cluster.writeHba("host all webapp 127.0.0.1/32 trust\n", { reload: true });
    gw = await startSessionGateway(`host all webapp 127.0.0.1/32 oauth issuer=${issuer.url} scope=api delegate_ident_mapping=1\n`, cluster.port, {
      HBAGATE_OAUTH_CA_FILE: issuer.caFile,
      HBAGATE_SESSIONS_MAX_PER_ROLE: "4",
    });
    // Not pipelined: with the password sent ahead, Neon's connect() resolves before the server's
    // answer to it, and a refusal would only show at the first query.
    pointNeonAt(gw, { pipelineConnect: false });
  });
  after(async () => {
    try {
      // A client whose session the server already ended may never settle its end(): not waited for long.
      await Promise.race([Promise.all(open.map((c) => c.end().catch(() => {}))), new Promise((r) => setTimeout(r, 2000))]);
      await gw?.close();
    } finally {
      await issuer?.stop();
      await cluster?.stop();
    }
  });

  /** A session of `token`'s, kept open until the test ends it; or the SQLSTATE and message that refused it. */
  const connect = async (token: string): Promise<Client | { code: string; message: string }> => {
    const client = new Client({ user: "webapp", password: token, host: "db.example", database: "postgres" });
    client.on("error", () => {});
    try {
      await client.connect();
      open.push(client);
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      const e = err as { code?: string; message?: string };
      return { code: String(e.code), message: String(e.message) };
    }
  };
  const tokenFor = (sub: string, claims: Record<string, unknown> = {}) => issuer.sign({ sub, role: "webapp", scope: "api", ...claims });
  const end = async (c: Client) => {
    open.splice(open.indexOf(c), 1);
    await c.end();
  };

  test("a valid token opens a session as its role, with its verified claims in request.jwt.claims", async () => {
    const c = await connect(await tokenFor("user-1", { team: "blue" }));
    assert.ok(c instanceof Client, JSON.stringify(c));
    const r = await c.query("select current_user as u, current_setting('request.jwt.claims')::jsonb as claims");
    assert.equal(r.rows[0].u, "webapp");
    assert.equal(r.rows[0].claims.sub, "user-1");
    assert.equal(r.rows[0].claims.team, "blue");
    await end(c);
  });

  test("an expired token, a token for another role and a forged one are refused (28000), and no token reaches the log", async () => {
    const expired = await tokenFor("user-1", { exp: Math.floor(Date.now() / 1000) - 3600 });
    const otherRole = await issuer.sign({ sub: "user-1", role: "admin", scope: "api" });
    const good = await tokenFor("user-1");
    const [header, , signature] = good.split(".");
    const forged = `${header}.${Buffer.from(JSON.stringify({ sub: "user-1", role: "webapp", scope: "api", iss: issuer.url, exp: 9999999999 })).toString("base64url")}.${signature}`;
    for (const token of [expired, otherRole, forged]) {
      const r = await connect(token);
      assert.ok(!(r instanceof Client), `refused: ${JSON.stringify(JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()))}`);
      assert.equal(r.code, "28000", r.message);
    }
    const logged = JSON.stringify(gw.logs);
    for (const token of [expired, otherRole, forged, good]) assert.ok(!logged.includes(token.split(".")[2]!), "no token signature in the log");
  });

  test("claims too large for PostgreSQL's startup packet: a clear 54000 naming the limit, before anything is sent upstream", async () => {
    // 12 KB of groups, as some identity providers put in a token: more than the 10,000 bytes PostgreSQL takes.
    const groups = Array.from({ length: 900 }, (_, i) => `group-${String(i).padStart(4, "0")}`);
    const r = await connect(await tokenFor("carol", { groups }));
    assert.ok(!(r instanceof Client), "refused");
    assert.equal(r.code, "54000", r.message);
    assert.match(r.message, /10000 bytes/);
    assert.doesNotMatch(await cluster.readLog(), /invalid length of startup packet/, "nothing was sent upstream");
    // The same token over HTTP has no such bound: its claims are set per request.
    const gwUrl = `http://${gw.authority}/v1/postgres/sql`;
    const res = await fetch(gwUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${await tokenFor("carol", { groups })}` }, body: JSON.stringify({ query: "select jsonb_array_length(current_setting('request.jwt.claims')::jsonb->'groups') as n" }) });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(((await res.json()) as { rows: unknown[] }).rows, [{ n: 900 }]);
  });

  test("one end user holds at most half the role's sessions; another user of the role still gets in; a session ended frees a place", async () => {
    const alice = await tokenFor("alice");
    const first = await connect(alice);
    const second = await connect(alice);
    assert.ok(first instanceof Client && second instanceof Client);
    const third = await connect(await tokenFor("alice"));
    assert.ok(!(third instanceof Client), "alice's third session is refused");
    assert.equal(third.code, "53300", third.message);
    assert.match(third.message, /too many connections for one caller of role "webapp"/);
    const bob = await connect(await tokenFor("bob"));
    assert.ok(bob instanceof Client, "bob is not held back by alice");
    assert.equal((await bob.query("select current_setting('request.jwt.claims')::jsonb->>'sub' as sub")).rows[0].sub, "bob");
    await end(first);
    const again = await connect(alice);
    assert.ok(again instanceof Client, JSON.stringify(again));
    for (const c of [second, bob, again]) await end(c as Client);
  });
});
