// The gateway's main path through app.request() (no socket), against a real
// PostgreSQL started by the harness: hba decision, verification by upstream
// login, statements, and PostgreSQL-shaped errors with their HTTP statuses.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import type { LogEvent } from "../../lib/log.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { testPools } from "./deps.ts";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { RoleMembership } from "../../lib/upstream/role-membership.ts";
import { serviceQueryOf } from "../../lib/upstream/service-query.ts";
import { parseTrustedProxies } from "../../lib/connection/forwarded.ts";
import { parseVerifierFile } from "../../lib/auth/verifier-file.ts";
import { Responses } from "../harness/responses.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testApp } from "../harness/gateway.ts";
import { basic } from "../harness/http.ts";

const RULES = `
host all     all     10.0.0.1/32  trust
host all     all     10.0.0.2/32  reject
host all     all     10.0.0.3/32  scram-sha-256
hostssl all  all     10.0.0.4/32  cert
hostssl all  all     10.0.0.5/32  password
`;

const SECRET = "s3cret-Καλημέρα-%&";


/** Every response of every app the tests make, searched for the passwords at the end. */
const responses = new Responses();
const recordedApp = (...args: Parameters<typeof testApp>) => responses.app(testApp(...args));

describe("gateway main path", () => {
  let cluster: Cluster;
  let pools: Pools;
  let peer: PeerInfo = { transport: "host", address: "10.0.0.1", encrypted: false };
  const logs: LogEvent[] = [];
  let app: ReturnType<typeof recordedApp>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`
      create role trustee login;
      create role alice login password '${SECRET}';
      create table items (id int primary key, name text not null);
      grant all on items to trustee, alice;
    `);
    // The upstream itself wants passwords, except for the role trust-authenticated callers use.
    await cluster.writeHba(
      "host all trustee 127.0.0.1/32 trust\nhost all md5user 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n",
      { reload: true },
    );
    pools = testPools(cluster.port);
    app = recordedApp(pools, RULES, { peer: () => peer, log: (e) => logs.push(e) });
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  async function post(body: unknown, opts: { auth?: string; address?: string; encrypted?: boolean; raw?: string; db?: string } = {}) {
    peer = { transport: "host", address: opts.address ?? "10.0.0.1", encrypted: opts.encrypted ?? false };
    const res = await app.request(`/v1/${opts.db ?? "postgres"}/sql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(opts.auth ? { authorization: opts.auth } : {}) },
      body: opts.raw ?? JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, any> };
  }

  test("trust: a statement with parameters returns rows and fields", async () => {
    const r = await post({ query: "select $1::int + 1 as answer, $2::text as who", params: [41, "x"] }, { auth: basic("trustee", "") });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.rows, [{ answer: 42, who: "x" }]);
    assert.deepEqual(r.json.fields.map((f: { name: string }) => f.name), ["answer", "who"]);
    assert.equal(r.json.command, "SELECT");
  });

  test("no matching line: 403, 28000, PostgreSQL's wording", async () => {
    const r = await post({ query: "select 1" }, { auth: basic("alice", SECRET), address: "10.9.9.9" });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, "28000");
    assert.equal(r.json.error.message, 'no pg_hba.conf entry for host "10.9.9.9", user "alice", database "postgres", no encryption');
  });

  test("reject: 403, 28000, and nothing falls through to later lines", async () => {
    const r = await post({ query: "select 1" }, { auth: basic("alice", SECRET), address: "10.0.0.2" });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.message, 'pg_hba.conf rejects connection for host "10.0.0.2", user "alice", database "postgres", no encryption');
  });

  test("scram-sha-256: the right password logs in upstream and runs", async () => {
    const r = await post({ query: "select current_user as me" }, { auth: basic("alice", SECRET), address: "10.0.0.3" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.rows, [{ me: "alice" }]);
  });

  test("wrong password and unknown user read the same: 401, 28P01", async () => {
    const wrong = await post({ query: "select 1" }, { auth: basic("alice", "nope"), address: "10.0.0.3" });
    const unknown = await post({ query: "select 1" }, { auth: basic("mallory", "nope"), address: "10.0.0.3" });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, "28P01");
    assert.equal(wrong.json.error.message, 'password authentication failed for user "alice"');
    assert.equal(unknown.status, 401);
    assert.equal(unknown.json.error.message, 'password authentication failed for user "mallory"');
    assert.deepEqual(Object.keys(wrong.json.error).sort(), Object.keys(unknown.json.error).sort());
  });

  test("an empty password is refused before any login", async () => {
    const r = await post({ query: "select 1" }, { auth: basic("alice", ""), address: "10.0.0.3" });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, "28P01");
  });

  test("password and md5 lines: the right password is allowed, a wrong one denied", async () => {
    const both = recordedApp(pools, "host all all 10.0.0.7/32 password\nhost all all 10.0.0.8/32 md5\n", { peer: () => peerFor });
    let peerFor: PeerInfo = { transport: "host", address: "10.0.0.7", encrypted: false };
    for (const address of ["10.0.0.7", "10.0.0.8"]) {
      peerFor = { transport: "host", address, encrypted: false };
      const ask = async (password: string) =>
        (await both.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic("alice", password) }, body: '{"query":"select 1"}' })).status;
      assert.equal(await ask(SECRET), 200, address);
      assert.equal(await ask("nope"), 401, address);
    }
  });

  test("hostssl lines need an encrypted connection", async () => {
    const plain = await post({ query: "select 1" }, { auth: basic("alice", SECRET), address: "10.0.0.5" });
    assert.equal(plain.status, 403);
    const tls = await post({ query: "select 1" }, { auth: basic("alice", SECRET), address: "10.0.0.5", encrypted: true });
    assert.equal(tls.status, 200);
  });

  test("a cert line on a gateway that can verify no certificate fails closed, as PostgreSQL's configuration error", async () => {
    const r = await post({ query: "select 1" }, { auth: basic("alice", SECRET), address: "10.0.0.4", encrypted: true });
    assert.equal(r.status, 500);
    assert.equal(r.json.error.code, "F0000");
    assert.equal(r.json.error.message, "client certificates can only be checked if a root certificate store is available");
  });

  test("statement errors carry every field PostgreSQL sent", async () => {
    const missing = await post({ query: "select * from nope" }, { auth: basic("trustee", "") });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.code, "42P01");
    assert.equal(missing.json.error.position, "15");
    await post({ query: "insert into items values (1, 'a')" }, { auth: basic("trustee", "") });
    const dup = await post({ query: "insert into items values (1, 'b')" }, { auth: basic("trustee", "") });
    assert.equal(dup.status, 409);
    assert.equal(dup.json.error.code, "23505");
    assert.equal(dup.json.error.constraint, "items_pkey");
    assert.equal(dup.json.error.table, "items");
    assert.equal(dup.json.error.schema, "public");
    assert.match(dup.json.error.detail, /Key \(id\)=\(1\) already exists/);
    const notnull = await post({ query: "insert into items values (2, null)" }, { auth: basic("trustee", "") });
    assert.equal(notnull.json.error.code, "23502");
    assert.equal(notnull.json.error.column, "name");
  });

  test("typed values: exact numbers as strings, ISO timestamps, bytea hex, JSON parsed", async () => {
    const r = await post(
      {
        query: `select 9007199254740993::int8 as big, 1.50::numeric as num, 'NaN'::float8 as nan, 2.5::float8 as f,
                '2024-05-06 07:08:09.123456+00'::timestamptz as ts, '2024-05-06'::date as d, '\\x0102'::bytea as b,
                '{"a":[1,null]}'::jsonb as j, true as t, array[1,2]::int4[] as arr, null::text as n`,
      },
      { auth: basic("trustee", "") },
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.rows[0], {
      big: "9007199254740993",
      num: "1.50",
      nan: "NaN",
      f: 2.5,
      ts: "2024-05-06T07:08:09.123456+00:00",
      d: "2024-05-06",
      b: "\\x0102",
      j: { a: [1, null] },
      t: true,
      arr: [1, 2],
      n: null,
    });
  });

  test("parameters: any JSON value goes as text and the server infers its type; null stays NULL", async () => {
    const r = await post(
      {
        query: "select $1::int + 1 as i, $2::jsonb as j, $3::bool as b, $4::text is null as isnull, $5::numeric as n, $6::int[] as a, $7::timestamptz as ts",
        params: [41, { k: ["v"] }, false, null, "12345678901234567890.5", "{3,4}", "2024-01-01 00:00:00.5+00"],
      },
      { auth: basic("trustee", "") },
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.rows[0], { i: 42, j: { k: ["v"] }, b: false, isnull: true, n: "12345678901234567890.5", a: [3, 4], ts: "2024-01-01T00:00:00.5+00:00" });
  });

  test("batches run in one transaction and return every result", async () => {
    const r = await post(
      { queries: [{ query: "insert into items values (10, 'ten')" }, { query: "select name from items where id = $1", params: [10] }] },
      { auth: basic("trustee", "") },
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.results.length, 2);
    assert.equal(r.json.results[0].command, "INSERT");
    assert.deepEqual(r.json.results[1].rows, [{ name: "ten" }]);
  });

  test("a failing batch rolls back everything before the error", async () => {
    const r = await post(
      { queries: [{ query: "insert into items values (20, 'twenty')" }, { query: "insert into items values (20, 'again')" }] },
      { auth: basic("trustee", "") },
    );
    assert.equal(r.status, 409);
    assert.equal(r.json.error.code, "23505");
    const after = await post({ query: "select count(*)::int as n from items where id = 20" }, { auth: basic("trustee", "") });
    assert.deepEqual(after.json.rows, [{ n: 0 }]);
  });

  test("Neon batch headers set isolation, read-only and deferrable", async () => {
    peer = { transport: "host", address: "10.0.0.1", encrypted: false };
    const call = async (headers: Record<string, string>, queries: { query: string }[]) => {
      const res = await app.request("/v1/postgres/sql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: basic("trustee", ""), ...headers },
        body: JSON.stringify({ queries }),
      });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };
    const iso = await call(
      { "Neon-Batch-Isolation-Level": "Serializable", "Neon-Batch-Read-Only": "true", "Neon-Batch-Deferrable": "true" },
      [{ query: "show transaction_isolation" }, { query: "show transaction_read_only" }, { query: "show transaction_deferrable" }],
    );
    assert.equal(iso.status, 200, JSON.stringify(iso.json));
    assert.deepEqual(
      iso.json.results.map((x: { rows: Record<string, string>[] }) => Object.values(x.rows[0]!)[0]),
      ["serializable", "on", "on"],
    );
    const ro = await call({ "Neon-Batch-Read-Only": "true" }, [{ query: "insert into items values (30, 'x')" }]);
    assert.equal(ro.json.error.code, "25006");
    const bad = await call({ "Neon-Batch-Isolation-Level": "Chaotic" }, [{ query: "select 1" }]);
    assert.deepEqual([bad.status, bad.json.error.code], [400, "22023"]);
  });

  test("response limits: too many rows or bytes is 507 (53400), cancelled rather than buffered", async () => {
    const limited = recordedApp(pools, RULES, { responseLimits: { maxRows: 100, maxBytes: 2000 } });
    const ask = async (query: string) => {
      const res = await limited.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic("trustee", "") }, body: JSON.stringify({ query }) });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };
    const ok = await ask("select g from generate_series(1, 100) g");
    assert.equal(ok.status, 200);
    assert.equal(ok.json.rows.length, 100);
    const rows = await ask("select generate_series(1, 100000000) as g"); // a target-list SRF streams its rows
    assert.deepEqual([rows.status, rows.json.error.code], [507, "53400"]);
    assert.match(rows.json.error.message, /100 rows/);
    const bytes = await ask("select repeat('x', 100) from generate_series(1, 50)");
    assert.deepEqual([bytes.status, bytes.json.error.code], [507, "53400"]);
    assert.match(bytes.json.error.message, /2000 bytes/);
    // Counted while streaming as 400 characters; escaped, the response is over 2,000.
    const escaped = await ask("select repeat(chr(1), 400) as s");
    assert.deepEqual([escaped.status, escaped.json.error.code], [507, "53400"]);
    // Bytes are UTF-8 bytes: 900 characters of three bytes each, 2,700 bytes.
    const wide = await ask("select repeat('€', 900) as s");
    assert.deepEqual([wide.status, wide.json.error.code], [507, "53400"]);
    const astral = await ask("select repeat('🎉', 400) as s"); // 4 bytes each (a surrogate pair), 1,600 + framing
    assert.equal(astral.status, 200);
    const astralOver = await ask("select repeat('🎉', 500) as s"); // 2,000 + framing
    assert.deepEqual([astralOver.status, astralOver.json.error.code], [507, "53400"]);
    // The connection is still good afterwards.
    assert.equal((await ask("select 1")).status, 200);
  });

  test("one statement per query: the extended protocol refuses a second one", async () => {
    const r = await post({ query: "select 1; select 2" }, { auth: basic("trustee", "") });
    assert.deepEqual([r.status, r.json.error.code], [400, "42601"]);
  });

  test("a statement past statement_timeout is cancelled: 504, 57014", async () => {
    const r = await post({ query: "select pg_sleep(5)" }, { auth: basic("trustee", "") });
    assert.equal(r.status, 504);
    assert.equal(r.json.error.code, "57014");
  });

  test("bad input: malformed JSON, wrong types, oversized bodies, bad credentials", async () => {
    const badJson = await post(undefined, { raw: '{"query":', auth: basic("trustee", "") });
    assert.deepEqual([badJson.status, badJson.json.error.code], [400, "22P02"]);
    const wrongType = await post({ query: 42 }, { auth: basic("trustee", "") });
    assert.deepEqual([wrongType.status, wrongType.json.error.code], [400, "22023"]);
    assert.match(wrongType.json.error.message, /query/);
    const extra = await post({ query: "select 1", sneaky: true }, { auth: basic("trustee", "") });
    assert.equal(extra.status, 400);
    const huge = await post({ query: "select '" + "x".repeat(5000) + "'" }, { auth: basic("trustee", "") });
    assert.deepEqual([huge.status, huge.json.error.code], [413, "54000"]);
    const noCreds = await post({ query: "select 1" });
    assert.deepEqual([noCreds.status, noCreds.json.error.code], [403, "28000"]);
    const garbled = await post({ query: "select 1" }, { auth: "Basic !!!" });
    assert.deepEqual([garbled.status, garbled.json.error.code], [400, "08P01"]);
    const nul = await post({ query: "select 1" }, { auth: basic("trus\0tee", "") });
    assert.deepEqual([nul.status, nul.json.error.code], [400, "08P01"]);
    const long = await post({ query: "select 1" }, { auth: basic("x".repeat(64), "") });
    assert.equal(long.status, 400);
  });

  test("unknown endpoints answer 404 with a SQLSTATE", async () => {
    const res = await app.request("/v2/nothing");
    assert.equal(res.status, 404);
    assert.ok(((await res.json()) as { error: { code: string } }).error.code);
  });

  test("/sql answers every error in Neon's shape, a wrong method on it too (never /v1's)", async () => {
    for (const method of ["GET", "PUT"]) {
      const res = await app.request("/sql", { method });
      assert.equal(res.status, 404, method);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(body.code, "42704", method);
      assert.equal(body.error, undefined, `${method}: not /v1's {"error": …}`);
    }
  });

  test("an unreachable upstream is 503 with a class 08 SQLSTATE", async () => {
    const down = testPools(1, { connectTimeout: 2 });
    const other = recordedApp(down, "host all all all trust\n", { caller: { anonymousUser: "trustee" } });
    const res = await other.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "select 1" }) });
    assert.equal(res.status, 503);
    assert.match(((await res.json()) as { error: { code: string } }).error.code, /^08/);
    await down.close();
  });

  test("verified callers are remembered: one upstream login for a burst, failures never cached", async () => {
    let logins = 0;
    const counting = { use: pools.use.bind(pools), login: async (d: string, u: string, p: string) => (logins++, pools.login(d, u, p)) };
    const cache = new VerifiedCallers({ ttlMs: 60_000, maxEntries: 100 });
    const cached = recordedApp(pools, RULES, { pools: counting, verifiedCallers: cache, peer: () => ({ transport: "host", address: "10.0.0.3", encrypted: false }) });
    const ask = async (password: string) =>
      (await cached.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic("alice", password) }, body: '{"query":"select 1"}' })).status;
    for (let i = 0; i < 5; i++) assert.equal(await ask(SECRET), 200);
    assert.equal(logins, 1);
    assert.equal(await ask("wrong"), 401);
    assert.equal(await ask("wrong"), 401);
    assert.equal(logins, 3);
    cache.clear(); // what a reload does
    assert.equal(await ask(SECRET), 200);
    assert.equal(logins, 4);
  });

  test("a verifier file replaces the upstream login for the password methods", async () => {
    const [row] = await cluster.sql<{ rolpassword: string }[]>`select rolpassword from pg_authid where rolname = 'alice'`;
    await cluster.sql.unsafe("set password_encryption = 'md5'");
    await cluster.sql.unsafe("create role md5user login password 'md5-secret'");
    const [md5row] = await cluster.sql<{ rolpassword: string }[]>`select rolpassword from pg_authid where rolname = 'md5user'`;
    await cluster.sql.unsafe("reset password_encryption");
    const file = parseVerifierFile("/secrets/users.txt", `"alice" "${row!.rolpassword}"\n"md5user" "${md5row!.rolpassword}"\n`);
    assert.deepEqual(file.errors, []);
    let logins = 0;
    const counting = { use: pools.use.bind(pools), login: async (d: string, u: string, p: string) => (logins++, pools.login(d, u, p)) };
    const withFile = recordedApp(pools, RULES + "host all all 10.0.0.6/32 md5\n", { pools: counting, verifierFile: () => file, peer: () => peerNow });
    let peerNow: PeerInfo = { transport: "host", address: "10.0.0.3", encrypted: false };
    const ask = async (user: string, password: string, address: string) => {
      peerNow = { transport: "host", address, encrypted: false };
      const res = await withFile.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic(user, password) }, body: '{"query":"select current_user as u"}' });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };
    const ok = await ask("alice", SECRET, "10.0.0.3");
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json.rows, [{ u: "alice" }]);
    assert.equal((await ask("alice", "nope", "10.0.0.3")).status, 401);
    assert.equal((await ask("ghost", "nope", "10.0.0.3")).json.error.message, 'password authentication failed for user "ghost"');
    // scram-sha-256 cannot be satisfied by an MD5 secret, even with the right password; md5 can.
    assert.equal((await ask("md5user", "md5-secret", "10.0.0.3")).status, 401);
    assert.equal((await ask("md5user", "md5-secret", "10.0.0.6")).status, 200);
    assert.equal(logins, 0, "no upstream login was used to verify");
  });

  test("a forged X-Forwarded-For from an untrusted peer changes nothing; a trusted proxy's does", async () => {
    const behind = (trusted: string) =>
      recordedApp(pools, RULES, { trustedProxies: parseTrustedProxies(trusted), peer: () => ({ transport: "host", address: "10.0.0.2", encrypted: false }) });
    const ask = async (app: ReturnType<typeof recordedApp>) =>
      (await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic("trustee", ""), "x-forwarded-for": "10.0.0.1" }, body: '{"query":"select 1"}' })).status;
    // 10.0.0.2 has a reject line; claiming to be 10.0.0.1 (trust) must not help...
    assert.equal(await ask(behind("")), 403);
    // ...unless 10.0.0.2 is a proxy we trust.
    assert.equal(await ask(behind("10.0.0.2/32")), 200);
  });

  test("+group and samerole follow the upstream's role graph, refreshed after the TTL", async () => {
    await cluster.sql.unsafe("create role staff nologin; create role team nologin in role staff; create role carol login in role team; create role boss superuser login");
    await cluster.sql.unsafe("grant all on items to carol, boss");
    let now = 0;
    const membership = new RoleMembership(serviceQueryOf(cluster.sql), { ttlMs: 1000, now: () => now });
    const app2 = recordedApp(pools, "host all +staff 10.0.0.1/32 trust\nhost samerole all 10.0.0.1/32 trust\n", {
      environment: { isMember: (u, r) => membership.isMember(u, r) },
    });
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    const ask = async (user: string, db = "postgres") =>
      (await app2.request(`/v1/${db}/sql`, { method: "POST", headers: { "content-type": "application/json", authorization: basic(user, "") }, body: '{"query":"select 1"}' })).status;
    assert.equal(await ask("carol"), 200, "indirect member of staff");
    assert.equal(await ask("boss"), 403, "a superuser is not a member unless granted");
    assert.equal(await ask("trustee"), 403);
    await cluster.sql.unsafe("grant staff to trustee");
    assert.equal(await ask("trustee"), 403, "the cached graph is still used");
    now += 1001;
    assert.equal(await ask("trustee"), 200, "the graph is re-read after the TTL");
    await cluster.sql.unsafe("create role club nologin; create role solo login in role club");
    await cluster.sql.unsafe("create database club");
    now += 1001;
    assert.equal(await ask("solo", "club"), 200, "samerole: the database is named after a role solo belongs to");
    assert.equal(await ask("solo", "postgres"), 403);
    await cluster.writeHba(
      "host all trustee 127.0.0.1/32 trust\nhost all md5user 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n",
      { reload: true },
    );
  });

  test("no password ever reaches the log, a response body or a header", async () => {
    assert.ok(logs.length > 0, "failures were logged");
    const text = JSON.stringify(logs);
    assert.ok(!text.includes(SECRET));
    assert.ok(!text.includes("nope"));
    assert.ok(responses.count > 50, `every request's response was recorded (${responses.count})`);
    const answered = await responses.text();
    // "nope" is also a table name a test asks for, which the error names: the passwords only.
    for (const secret of [SECRET, "md5-secret", Buffer.from(`alice:${SECRET}`).toString("base64")]) assert.ok(!answered.includes(secret), `${secret} in a response`);
  });
});
