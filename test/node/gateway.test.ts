// The assembled Node server against a real PostgreSQL: the Unix-socket
// listener is hba `local`, the HTTPS listener makes requests encrypted, and a
// reload swaps the configuration only when all of it is valid.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { selfSigned } from "../harness/certs.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic } from "../harness/http.ts";

interface Reply {
  status: number;
  body: Record<string, any>;
}

function call(target: { socketPath: string } | { url: string }, body: unknown, user = "app", password = ""): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", authorization: basic(user, password) };
    const onResponse = (res: import("node:http").IncomingMessage) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, any> }));
    };
    const req =
      "socketPath" in target
        ? httpRequest({ socketPath: target.socketPath, path: "/v1/postgres/sql", method: "POST", headers }, onResponse)
        : target.url.startsWith("https:")
          ? httpsRequest(`${target.url}/v1/postgres/sql`, { method: "POST", headers, rejectUnauthorized: false }, onResponse)
          : httpRequest(`${target.url}/v1/postgres/sql`, { method: "POST", headers }, onResponse);
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** GET /readyz over the gateway's TLS (a self-signed certificate) from this machine. */
function readyz(url: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${url}/readyz`, { rejectUnauthorized: false }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, any> }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the Node server", () => {
  let cluster: Cluster;
  let gateway: RunningGateway;
  let dir: string;
  const logs: LogEvent[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.sql.unsafe("create role svc login password 'svc-upstream-pw'");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\nhost all svc 127.0.0.1/32 scram-sha-256\n", { reload: true });
    dir = mkdtempSync(join(tmpdir(), "hbagate-node-"));
    const tls = selfSigned(dir, "cert", { cn: "localhost" });
    writeFileSync(join(dir, "pg_hba.conf"), "local all app,svc trust\nhostssl all app 127.0.0.1/32 trust\n");
    writeFileSync(join(dir, "pg_ident.conf"), "m1 /^(.*)$ \\1\n");
    writeFileSync(join(dir, "roles.json"), JSON.stringify({ svc: "svc-upstream-pw" }));
    const settings = nodeSettings({
      HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
      HBAGATE_UNIX_SOCKET: join(dir, "hbagate.sock"),
      HBAGATE_TLS_CERT_FILE: tls.certFile,
      HBAGATE_TLS_KEY_FILE: tls.keyFile,
      HBAGATE_IDENT_FILE: join(dir, "pg_ident.conf"),
      HBAGATE_ROLE_CREDENTIALS_FILE: join(dir, "roles.json"),
      HBAGATE_MAX_BODY_BYTES: "4096",
    }, cluster.port);
    gateway = await startNodeGateway(settings, logs);
  });
  after(async () => {
    await gateway?.close();
    await cluster?.stop();
  });

  test("it listens on HTTPS and on the Unix socket", () => {
    assert.match(gateway.urls[0]!, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(gateway.urls[1], `unix:${join(dir, "hbagate.sock")}`);
  });

  test("Unix-socket requests are local connections", async () => {
    const r = await call({ socketPath: join(dir, "hbagate.sock") }, { query: "select current_user as u" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ u: "app" }]);
  });

  test("HTTPS requests are encrypted connections (hostssl matches)", async () => {
    const r = await call({ url: gateway.urls[0]! }, { query: "select 1 as one" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  /** A request whose body goes out in `chunks` (chunked framing unless a content-length is given). */
  function rawPost(chunks: readonly (string | Uint8Array)[], headers: Record<string, string> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { socketPath: join(dir, "hbagate.sock"), path: "/v1/postgres/sql", method: "POST", headers: { "content-type": "application/json", authorization: basic("app"), ...headers } },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, any> }));
        },
      );
      req.on("error", reject);
      for (const c of chunks) req.write(c);
      req.end();
    });
  }

  test("request bodies are bounded whether their length is declared or streamed in chunks", async () => {
    const big = JSON.stringify({ query: `select '${"x".repeat(5000)}' as x` });
    const declared = await rawPost([big], { "content-length": String(Buffer.byteLength(big)) });
    assert.deepEqual([declared.status, declared.body.error.code, declared.body.error.message], [413, "54000", "request body exceeds 4096 bytes"]);
    const streamed = await rawPost([big.slice(0, 3000), big.slice(3000)]);
    assert.deepEqual([streamed.status, streamed.body.error.code], [413, "54000"]);
    // Within the limit, a chunked body is read whole, however it was cut.
    const small = JSON.stringify({ query: "select $1::text as t", params: ["ü".repeat(500)] });
    const pieces = [small.slice(0, 7), small.slice(7, 600), small.slice(600)];
    const ok = await rawPost(pieces);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.rows, [{ t: "ü".repeat(500) }]);
  });

  test("a body that is not UTF-8 is refused (22021), not read as U+FFFD and sent on", async () => {
    const [head, tail] = ['{"query":"select $1::text as t","params":["a', 'b"]}'].map((t) => Buffer.from(t));
    // 0xC3 0x28: a two-byte lead followed by an ASCII byte.
    const bad = Buffer.concat([head!, Buffer.from([0xc3, 0x28]), tail!]);
    const declared = await rawPost([bad], { "content-length": String(bad.length) });
    assert.deepEqual([declared.status, declared.body.error.code, declared.body.error.message], [400, "22021", "the request body is not valid UTF-8"]);
    const streamed = await rawPost([bad.subarray(0, 10), bad.subarray(10)]);
    assert.deepEqual([streamed.status, streamed.body.error.code], [400, "22021"]);
    // A character cut between two chunks is still one character.
    const euro = Buffer.concat([head!, Buffer.from("€"), tail!]);
    const cut = head!.length + 1;
    const whole = await rawPost([euro.subarray(0, cut), euro.subarray(cut)]);
    assert.deepEqual([whole.status, whole.body.rows], [200, [{ t: "a€b" }]]);
  });

  test("a role with configured credentials logs in upstream with them, not the caller's", async () => {
    const r = await call({ socketPath: join(dir, "hbagate.sock") }, { query: "select current_user as u" }, "svc");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ u: "svc" }]);
    assert.ok(!JSON.stringify(logs).includes("svc-upstream-pw"), "the configured password is never logged");
  });

  test("an invalid ident or credentials file fails the reload like a bad hba line", async () => {
    writeFileSync(join(dir, "pg_ident.conf"), "m1 onlytwo\n");
    assert.equal(await gateway.reload(), false);
    assert.ok(logs.some((l) => typeof l.error === "string" && l.error.endsWith("pg_ident.conf:1: missing entry at end of line")));
    writeFileSync(join(dir, "pg_ident.conf"), "m1 /^(.*)$ \\1\n");
    writeFileSync(join(dir, "roles.json"), '{"svc": 42}');
    assert.equal(await gateway.reload(), false);
    writeFileSync(join(dir, "roles.json"), JSON.stringify({ svc: "svc-upstream-pw" }));
    assert.equal(await gateway.reload(), true);
  });

  test("a file with no rules (empty, or comments only) does not start the gateway", async () => {
    for (const [name, text] of [["empty.conf", ""], ["comments.conf", "# hostssl all app 127.0.0.1/32 trust\n\n"]] as const) {
      const path = join(dir, name);
      writeFileSync(path, text);
      const startLogs: LogEvent[] = [];
      const g = await startGateway(nodeSettings({ HBAGATE_HBA_FILE: path }, cluster.port), (e) => startLogs.push(e));
      await g?.close();
      assert.equal(g, undefined, `${name}: the gateway started`);
      assert.ok(startLogs.some((l) => l.error === `${path}:1: configuration file "${path}" contains no entries`), JSON.stringify(startLogs));
    }
  });

  test("a reload to a file with no rules keeps the running rules (PostgreSQL keeps its old ones too)", async () => {
    const hba = join(dir, "pg_hba.conf");
    const url = gateway.urls[0]!;
    assert.equal((await call({ url }, { query: "select 1" })).status, 200, "admitted before the reload");
    for (const text of ["", "# everything commented out\n# hostssl all app 127.0.0.1/32 trust\n\n   \n"]) {
      writeFileSync(hba, text);
      assert.equal(await gateway.reload(), false, `reload of ${JSON.stringify(text)}`);
      assert.ok(logs.some((l) => l.error === `${hba}:1: configuration file "${hba}" contains no entries`));
      // Were the empty file applied, no line would match and this would be a 403.
      const r = await call({ url }, { query: "select 1" });
      assert.equal(r.status, 200, `old rules still in force after ${JSON.stringify(text)}: ${JSON.stringify(r.body)}`);
      // Still serving on valid rules: ready, so a load balancer does not drain every instance over a typo;
      // the checks say the reload was not applied.
      const ready = await readyz(url);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.match(ready.body.checks?.config ?? "", /^ok \(warning: the last reload failed/);
    }
    writeFileSync(hba, "local all app,svc trust\nhostssl all app 127.0.0.1/32 trust\n");
    assert.equal(await gateway.reload(), true);
    assert.equal((await readyz(url)).body.checks?.config, "ok");
  });

  test("a reload that brings +group lines without a service user says, as the start does, that they match no one", async () => {
    const hba = join(dir, "pg_hba.conf");
    const before = logs.length;
    writeFileSync(hba, "local all app,svc trust\nhostssl all app 127.0.0.1/32 trust\nhostssl all +staff 127.0.0.1/32 trust\n");
    try {
      assert.equal(await gateway.reload(), true);
      assert.ok(
        logs.slice(before).some((l) => l.msg === "rules use +group or samerole but HBAGATE_SERVICE_USER is not set: those entries match no one"),
        JSON.stringify(logs.slice(before)),
      );
    } finally {
      writeFileSync(hba, "local all app,svc trust\nhostssl all app 127.0.0.1/32 trust\n");
      await gateway.reload();
    }
  });

  test("a clientcert= line on a gateway with no client CA refuses with PostgreSQL's words for a server without ssl_ca_file", async () => {
    const hba = join(dir, "pg_hba.conf");
    const url = gateway.urls[0]!;
    const good = "local all app,svc trust\nhostssl all app 127.0.0.1/32 trust\n";
    writeFileSync(hba, "hostssl all svc 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\nhostssl all all 127.0.0.1/32 reject\n");
    try {
      assert.equal(await gateway.reload(), true);
      // The right password is not enough, and the line admits no one: nothing could verify a certificate.
      const svc = await call({ url }, { query: "select 1" }, "svc", "svc-upstream-pw");
      assert.deepEqual([svc.status, svc.body.error?.code, svc.body.error?.message], [500, "F0000", "client certificates can only be checked if a root certificate store is available"]);
      assert.ok(logs.some((l) => l.msg === "a line needs a client certificate but none can be verified here: set HBAGATE_TLS_CLIENT_CA_FILE" && l.line === 1));
      // Without the option the same line admits svc with that password: the option was all that stood in the way.
      writeFileSync(hba, "hostssl all svc 127.0.0.1/32 scram-sha-256\n");
      assert.equal(await gateway.reload(), true);
      assert.equal((await call({ url }, { query: "select 1" }, "svc", "svc-upstream-pw")).status, 200);
    } finally {
      writeFileSync(hba, good);
      assert.equal(await gateway.reload(), true);
    }
  });

  test("a reload with an invalid file keeps the running rules; a valid one replaces them", async () => {
    // The new file's valid lines refuse app: had any of them been applied, app would be out.
    writeFileSync(join(dir, "pg_hba.conf"), "local all app reject\nhostssl all app 127.0.0.1/32 reject\nhost all all all bogus\n");
    assert.equal(await gateway.reload(), false);
    assert.ok(logs.some((l) => typeof l.error === "string" && l.error.endsWith("pg_hba.conf:3: invalid authentication method \"bogus\"")));
    const https = await call({ url: gateway.urls[0]! }, { query: "select 1" });
    assert.equal(https.status, 200, `old rules still in force over HTTPS: ${JSON.stringify(https.body)}`);
    const local = await call({ socketPath: join(dir, "hbagate.sock") }, { query: "select 1" });
    assert.equal(local.status, 200, `old rules still in force on the socket: ${JSON.stringify(local.body)}`);

    writeFileSync(join(dir, "pg_hba.conf"), "local all app trust\nhostssl all app 127.0.0.1/32 reject\n");
    assert.equal(await gateway.reload(), true);
    const refused = await call({ url: gateway.urls[0]! }, { query: "select 1" });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /^pg_hba.conf rejects connection for host "127.0.0.1", user "app", database "postgres", SSL encryption$/);
    assert.equal((await call({ socketPath: join(dir, "hbagate.sock") }, { query: "select 1" })).status, 200);
  });
});
