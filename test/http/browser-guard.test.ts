// Browser safety through app.request(), against a real PostgreSQL: a request
// with a body that is not JSON is refused before authentication and before its
// body is read; everything else (curl, servers, Neon's client) passes as before.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import { createApp, type GatewayDeps, type LogEvent } from "../../lib/http/app.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testDeps, testPools } from "./deps.ts";

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
    createApp(testDeps(pools, RULES, { peer: () => loopback, caller: { anonymousUser: "app" }, log: (e) => logs.push(e), ...overrides }));

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

});
