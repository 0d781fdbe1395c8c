// Browser safety through app.request(), against a real PostgreSQL: a request
// for a host that is not ours, from an origin that is not allowed, or with a
// body that is not JSON is refused before authentication and before its body
// is read; everything else (curl, servers, Neon's client, listed origins,
// trusted proxies) passes as before.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import { parseTrustedProxies } from "../../lib/connection/forwarded.ts";
import type { GatewayDeps } from "../../lib/http/app.ts";
import type { LogEvent } from "../../lib/log.ts";
import { hostOf, parseAllowedHosts, parseCorsOrigins } from "../../lib/http/browser-guard.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "./deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const RULES = "host all app 127.0.0.1/32 trust\nhost all app 198.51.100.7/32 trust\nhost all alice 127.0.0.1/32 scram-sha-256\n";
const JSON_TYPE = { "content-type": "application/json" };
const QUERY = JSON.stringify({ query: "select current_user as u" });
const NEON = { "neon-connection-string": "postgresql://app@db.example.invalid/postgres" };

describe("browser safety", () => {
  let cluster: Cluster;
  let pools: Pools;
  const logs: LogEvent[] = [];
  const loopback: PeerInfo = { transport: "host", address: "127.0.0.1", encrypted: false };
  const app = (overrides: Partial<GatewayDeps> = {}) =>
    testApp(pools, RULES, { peer: () => loopback, caller: { anonymousUser: "app" }, log: (e) => logs.push(e), ...overrides });

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login; create role alice login password 'alice-pw'");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\nhost all alice 127.0.0.1/32 scram-sha-256\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const send = (a: ReturnType<typeof app>, headers: Record<string, string>, opts: { path?: string; url?: string; body?: RequestInit["body"] } = {}) =>
    a.request(opts.url ?? `http://localhost${opts.path ?? "/v1/postgres/sql"}`, { method: "POST", headers, body: opts.body ?? QUERY });
  async function refused(res: Response, status: number, code: string, message?: RegExp) {
    const body = (await res.json()) as { error?: { code: string; message: string }; code?: string; message?: string };
    const error = body.error ?? (body as { code: string; message: string });
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
  }
  async function ok(res: Response) {
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Record<string, any>;
  }

  test("the attack: a simple cross-origin request for a rebound name, sent the way a page would, runs nothing", async () => {
    const res = await send(app(), { origin: "https://evil.example", "content-type": "text/plain", host: "rebind.evil.example" }, {
      body: JSON.stringify({ query: "create table pwned (x int)" }),
    });
    await refused(res, 403, "28000");
    assert.equal((await cluster.sql`select to_regclass('pwned') as t`)[0]?.t, null);
  });

  test("refused before authentication and before the body is read", async () => {
    let pulled = false;
    const stream = () => new ReadableStream({ pull: (ctl) => { pulled = true; ctl.enqueue(new TextEncoder().encode(QUERY)); ctl.close(); } }, { highWaterMark: 0 });
    const before = logs.length;
    const wrongPassword = basic("alice", "wrong");
    for (const headers of [{ origin: "https://evil.example", ...JSON_TYPE }, { host: "rebind.evil.example", ...JSON_TYPE }, { "content-type": "text/plain" }]) {
      const res = await app().request("http://localhost/v1/postgres/sql", { method: "POST", headers: { authorization: wrongPassword, ...headers }, body: stream(), duplex: "half" } as RequestInit);
      assert.notEqual(res.status, 401);
      assert.notEqual(res.status, 200);
    }
    assert.equal(pulled, false);
    assert.deepEqual(logs.slice(before).filter((e) => e.msg === "authentication failed"), []);
    // The same request with nothing wrong but the password is read and authenticated.
    const res = await app().request("http://localhost/v1/postgres/sql", { method: "POST", headers: { authorization: wrongPassword, ...JSON_TYPE }, body: stream(), duplex: "half" } as RequestInit);
    assert.equal(res.status, 401);
    assert.equal(pulled, true);
    assert.equal(logs.slice(before).filter((e) => e.msg === "authentication failed").length, 1);
  });

  describe("Origin", () => {
    test("without Origin (curl, servers, Node drivers) nothing changes", async () => {
      assert.deepEqual((await ok(await send(app(), JSON_TYPE))).rows, [{ u: "app" }]);
    });

    test("an origin not listed is refused on /v1 (403) and on Neon's /sql (400, Neon's flat error)", async () => {
      await refused(await send(app(), { origin: "https://evil.example", ...JSON_TYPE }), 403, "28000", /origin "https:\/\/evil\.example" is not allowed/);
      const neon = await send(app({ corsOrigins: parseCorsOrigins("https://app.example") }), { origin: "https://evil.example", ...NEON, ...JSON_TYPE }, { path: "/sql" });
      assert.equal(neon.status, 400);
      const body = (await neon.json()) as Record<string, unknown>;
      assert.equal(body.code, "28000");
      assert.equal(body.severity, "ERROR");
      assert.equal(body.error, undefined);
    });

    test("Origin: null, an empty Origin and two Origin headers are refused, even with the origin listed", async () => {
      const a = app({ corsOrigins: parseCorsOrigins("https://app.example") });
      for (const origin of ["null", "", "https://app.example, https://app.example", "https://APP.example", "https://app.example:443/"]) {
        await refused(await send(a, { origin, ...JSON_TYPE }), 403, "28000");
      }
    });

    test("a listed origin passes, with its CORS headers, on both endpoints", async () => {
      const a = app({ corsOrigins: parseCorsOrigins("https://app.example/, capacitor://localhost") });
      const res = await send(a, { origin: "https://app.example", ...JSON_TYPE });
      assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example");
      assert.deepEqual((await ok(res)).rows, [{ u: "app" }]);
      assert.equal((await send(a, { origin: "capacitor://localhost", ...JSON_TYPE })).status, 200);
      assert.deepEqual((await ok(await send(a, { origin: "https://app.example", ...NEON, ...JSON_TYPE }, { path: "/sql" }))).rows, [["app"]]);
    });

    test("* lets any origin through (null too), never with credentials", async () => {
      const a = app({ corsOrigins: parseCorsOrigins("*") });
      for (const origin of ["https://any.example", "null"]) {
        const res = await send(a, { origin, ...JSON_TYPE });
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        assert.equal(res.headers.get("access-control-allow-credentials"), null);
        await ok(res);
      }
    });

    test("a preflight from an origin not listed is refused; a listed one is answered", async () => {
      const a = app({ corsOrigins: parseCorsOrigins("https://app.example") });
      const ask = (origin: string) => a.request("http://localhost/v1/postgres/sql", { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST" } });
      const evil = await ask("https://evil.example");
      assert.equal(evil.status, 403);
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
      assert.equal((await ask("https://app.example")).status, 204);
    });
  });

  describe("Content-Type", () => {
    test("JSON passes, in any case and with a UTF-8 charset", async () => {
      for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\"", "application/json ; foo=bar"]) {
        await ok(await send(app(), { "content-type": type }));
      }
    });

    test("what a browser sends without a preflight (text/plain, forms, multipart, none) is 415 on /v1", async () => {
      const form = new FormData();
      form.set("query", "select 1");
      await refused(await send(app(), {}, { body: form }), 415, "22P04", /multipart\/form-data/);
      await refused(await send(app(), {}, { body: new URLSearchParams({ query: "select 1" }) }), 415, "22P04");
      await refused(await send(app(), {}), 415, "22P04", /text\/plain/);
      await refused(await send(app(), {}, { body: new Blob([QUERY]) }), 415, "22P04", /missing Content-Type/);
      await refused(await send(app(), { "content-type": "application/json, text/plain" }), 415, "22P04");
      await refused(await send(app(), { "content-type": "application/json; charset=utf-16" }), 415, "22P04", /charset/);
      await refused(await send(app(), { "content-type": "application/jsonp" }), 415, "22P04");
    });

    test("/sql also takes text/plain, which Neon's client sends (it needs a header that forces a preflight); forms are 400 there", async () => {
      assert.deepEqual((await ok(await send(app(), { ...NEON }, { path: "/sql" }))).rows, [["app"]]);
      const res = await send(app(), { ...NEON, "content-type": "application/x-www-form-urlencoded" }, { path: "/sql" });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { code: string }).code, "22P04");
    });
  });

  describe("Host", () => {
    test("loopback names and IP addresses pass, with any port", async () => {
      const a = app();
      for (const host of ["localhost", "localhost:8080", "LOCALHOST:1", "localhost.", "127.0.0.1:8080", "127.0.0.1.", "[::1]", "[::1]:8080", "dev.localhost:3000", "10.1.2.3:8080", "[2001:db8::7]"]) {
        await ok(await send(a, { host, ...JSON_TYPE }));
      }
    });

    test("other names are refused: rebinding, look-alikes, malformed and duplicate Host headers", async () => {
      const a = app();
      for (const host of ["rebind.evil.example", "localhost.evil.example", "evil-localhost", "localhost..", "127.0.0.1.evil.example", "2130706433", "0x7f.1", "[::1", "localhost:80:80", "user@localhost", "localhost, evil.example", "evil.example, localhost", " "]) {
        await refused(await send(a, { host, ...JSON_TYPE }), 403, "28000", /^host /);
      }
    });

    test("an absolute-form request target names a host too", async () => {
      await refused(await send(app(), { host: "localhost", ...JSON_TYPE }, { url: "http://rebind.evil.example/v1/postgres/sql" }), 403, "28000");
      await refused(await send(app(), { ...JSON_TYPE }, { url: "http://rebind.evil.example/v1/postgres/sql" }), 403, "28000");
    });

    test("HBAGATE_ALLOWED_HOSTS adds names and *.suffix patterns, with any port and case; * allows any", async () => {
      const a = app({ allowedHosts: parseAllowedHosts("db.example.com, *.apps.example.com") });
      for (const host of ["db.example.com", "DB.Example.Com:443", "db.example.com.", "x.apps.example.com", "a.b.apps.example.com:8443", "localhost"]) {
        await ok(await send(a, { host, ...JSON_TYPE }));
      }
      for (const host of ["apps.example.com", "db.example.com.evil.example", "evil.example", "xapps.example.com"]) {
        await refused(await send(a, { host, ...JSON_TYPE }), 403, "28000");
      }
      await ok(await send(app({ allowedHosts: parseAllowedHosts("*") }), { host: "anything.example", ...JSON_TYPE }));
    });

    test("/sql refuses a foreign host in Neon's format; /readyz is checked too", async () => {
      const res = await send(app(), { host: "rebind.evil.example", ...NEON }, { path: "/sql" });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { code: string }).code, "28000");
      assert.equal((await app().request("http://rebind.evil.example/readyz")).status, 403);
      assert.equal((await app().request("http://127.0.0.1:8080/readyz")).status, 200);
    });
  });

  describe("behind a trusted proxy", () => {
    const proxied = () =>
      app({ peer: () => ({ transport: "host", address: "10.0.0.2", encrypted: false }), trustedProxies: parseTrustedProxies("10.0.0.2"), allowedHosts: parseAllowedHosts("api.example.com") });

    test("the name the client used (X-Forwarded-Host) is checked, not the proxy's Host; X-Forwarded-For still decides the address", async () => {
      const headers = { host: "hbagate-upstream:8080", "x-forwarded-host": "api.example.com", "x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https", ...JSON_TYPE };
      assert.deepEqual((await ok(await send(proxied(), headers))).rows, [{ u: "app" }]);
      await refused(await send(proxied(), { ...headers, "x-forwarded-host": "rebind.evil.example" }), 403, "28000");
      await refused(await send(proxied(), { ...headers, "x-forwarded-host": "api.example.com, rebind.evil.example" }), 403, "28000");
    });

    test("without X-Forwarded-Host the Host header counts", async () => {
      const headers = { "x-forwarded-for": "198.51.100.7", ...JSON_TYPE };
      await ok(await send(proxied(), { host: "api.example.com", ...headers }));
      await refused(await send(proxied(), { host: "rebind.evil.example", ...headers }), 403, "28000");
    });

    test("X-Forwarded-Host from anyone else is ignored", async () => {
      const direct = app({ allowedHosts: parseAllowedHosts("api.example.com") });
      await refused(await send(direct, { host: "rebind.evil.example", "x-forwarded-host": "api.example.com", ...JSON_TYPE }), 403, "28000");
      await ok(await send(direct, { host: "localhost", "x-forwarded-host": "rebind.evil.example", ...JSON_TYPE }));
    });
  });

  test("settings: bad origins and host entries are errors naming the entry", () => {
    assert.throws(() => parseCorsOrigins("https://app.example/path"), /invalid origin "https:\/\/app\.example\/path"/);
    assert.throws(() => parseCorsOrigins("null"), /origin "null" cannot be allowed/);
    assert.throws(() => parseCorsOrigins("app.example"), /invalid origin/);
    assert.deepEqual(parseCorsOrigins(" https://App.Example:443/ , http://localhost:5173"), ["https://app.example", "http://localhost:5173"]);
    assert.throws(() => parseAllowedHosts("api.example.com:443"), /invalid allowed host "api\.example\.com:443"/);
    assert.throws(() => parseAllowedHosts("https://api.example.com"), /invalid allowed host/);
    assert.equal(hostOf("[::1]:8080"), "[::1]");
    assert.equal(hostOf("Example.COM.:80"), "example.com");
  });
});
