// The bundled Lambda handler (dist-style single file, built here with esbuild),
// imported in-process and invoked with real-shaped Function URL / API Gateway
// v2 and v1 events, against the harness's real PostgreSQL.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, test } from "node:test";
import { iamPrincipal } from "../../lib/lambda/peer.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { clientConnectionsOpen } from "../harness/process.ts";
import { startPgProxy } from "../harness/tcp-proxy.ts";
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildLambda } from "../../scripts/build-lambda.mjs";
import { basic } from "../harness/http.ts";

type Handler = (event: unknown, context?: unknown) => Promise<{ statusCode: number; body: string; headers?: Record<string, string> }>;

const BODY = JSON.stringify({ query: "select current_user as u, inet_client_addr() is not null as tcp" });

function v2Event(sourceIp: string, headers: Record<string, string>, iamArn?: string) {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: "/v1/postgres/sql",
    rawQueryString: "",
    headers: { "content-type": "application/json", host: "abc123.lambda-url.eu-west-1.on.aws", "x-forwarded-proto": "https", ...headers },
    requestContext: {
      accountId: iamArn ? "123456789012" : "anonymous",
      apiId: "abc123",
      authentication: null,
      authorizer: iamArn
        ? { iam: { accessKey: "ASIAEXAMPLE", accountId: "123456789012", callerId: "AROAEXAMPLE:session", cognitoIdentity: null, principalOrgId: null, userArn: iamArn, userId: "AROAEXAMPLE:session" } }
        : {},
      domainName: "abc123.lambda-url.eu-west-1.on.aws",
      domainPrefix: "abc123",
      http: { method: "POST", path: "/v1/postgres/sql", protocol: "HTTP/1.1", sourceIp, userAgent: "test" },
      requestId: "req-1",
      routeKey: "$default",
      stage: "$default",
      time: "24/Nov/2026:01:00:00 +0000",
      timeEpoch: 1795482000000,
    },
    body: BODY,
    isBase64Encoded: false,
  };
}

function v1Event(sourceIp: string, headers: Record<string, string>) {
  return {
    resource: "/{proxy+}",
    path: "/v1/postgres/sql",
    httpMethod: "POST",
    headers: { "content-type": "application/json", ...headers },
    multiValueHeaders: Object.fromEntries(Object.entries({ "content-type": "application/json", ...headers }).map(([k, v]) => [k, [v]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: { proxy: "v1/postgres/sql" },
    stageVariables: null,
    requestContext: {
      accountId: "123456789012",
      apiId: "api1",
      authorizer: {},
      domainName: "api1.execute-api.eu-west-1.amazonaws.com",
      domainPrefix: "api1",
      extendedRequestId: "x",
      httpMethod: "POST",
      identity: { sourceIp, userAgent: "test", accessKey: null, userArn: null },
      path: "/prod/v1/postgres/sql",
      protocol: "HTTP/1.1",
      requestId: "req-2",
      requestTime: "24/Nov/2026:01:00:00 +0000",
      requestTimeEpoch: 1795482000000,
      resourcePath: "/{proxy+}",
      stage: "prod",
    },
    body: BODY,
    isBase64Encoded: false,
  };
}

describe("the Lambda handler", () => {
  let cluster: Cluster;
  let handler: Handler;
  let bundleBytes = 0;
  let bundleText = "";
  let bundle: string;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login; create role mapped login; create role admin login");
    await cluster.writeHba("host all app,mapped,admin 127.0.0.1/32 trust\n", { reload: true });
    const dir = mkdtempSync(join(tmpdir(), "hbagate-lambda-"));
    writeFileSync(
      join(dir, "pg_hba.conf"),
      [
        "local    all  admin   peer",
        "local    all  app     peer map=iam",
        "local    all  mapped  peer map=iam",
        "hostssl  all  app     203.0.113.0/24  reject",
        "hostssl  all  app     0.0.0.0/0       trust",
      ].join("\n") + "\n",
    );
    // One role of one account, any session name; one IAM user by its whole ARN.
    writeFileSync(
      join(dir, "pg_ident.conf"),
      ["iam  /^arn:aws:sts::123456789012:assumed-role/AppRole/[^/]+$  app", "iam  arn:aws:iam::123456789012:user/ci/deploy-bot  mapped"].join("\n") + "\n",
    );
    Object.assign(process.env, {
      HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
      HBAGATE_IDENT_FILE: join(dir, "pg_ident.conf"),
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      // A loopback server without TLS (on Lambda the default verifies it: test/lambda/upstream-tls.test.ts).
      HBAGATE_UPSTREAM_SSL: "disable",
      HBAGATE_STALE_AFTER_MS: "100",
      HBAGATE_CORS_ORIGINS: "https://app.example",
    });
    const built = (await buildLambda(join(dir, "lambda.mjs"))) as { outfile: string; bytes: number };
    bundleBytes = built.bytes;
    bundleText = readFileSync(built.outfile, "utf8");
    bundle = built.outfile;
    handler = ((await import(pathToFileURL(built.outfile).href)) as { handler: Handler }).handler;
  });
  after(async () => {
    await cluster?.stop();
  });

  const rows = (r: { body: string }) => (JSON.parse(r.body) as { rows?: unknown[] }).rows;
  const error = (r: { body: string }) => (JSON.parse(r.body) as { error?: { code: string; message: string } }).error;

  test("the bundle is one file, without the Node server's embedded PGlite", () => {
    assert.ok(bundleBytes > 100_000 && bundleBytes < 5_000_000, `${bundleBytes} bytes`);
    // PGlite reaches no bundle but the Node server's: the assembly takes it as a port.
    assert.doesNotMatch(bundleText, /electric-sql|pglite\.wasm|PGliteSocketServer/);
  });

  test("Function URL (payload v2): the source IP meets the rules; requests are encrypted (hostssl)", async () => {
    const r = await handler(v2Event("198.51.100.7", { authorization: basic("app") }));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(rows(r), [{ u: "app", tcp: true }]);
  });

  test("a reject line for the event's source IP is honoured", async () => {
    const r = await handler(v2Event("203.0.113.9", { authorization: basic("app") }));
    assert.equal(r.statusCode, 403);
    assert.equal(error(r)?.message, 'pg_hba.conf rejects connection for host "203.0.113.9", user "app", database "postgres", SSL encryption');
  });

  test("a forged X-Forwarded-For does not change the source IP", async () => {
    const r = await handler(v2Event("203.0.113.9", { authorization: basic("app"), "x-forwarded-for": "198.51.100.1" }));
    assert.equal(r.statusCode, 403);
  });

  test("API Gateway REST API (payload v1)", async () => {
    const r = await handler(v1Event("198.51.100.8", { authorization: basic("app") }));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(rows(r), [{ u: "app", tcp: true }]);
  });

  test("IAM-authenticated requests are local; peer compares the principal's whole ARN, through the ident map", async () => {
    const ok = await handler(v2Event("10.0.0.1", { authorization: basic("app") }, "arn:aws:sts::123456789012:assumed-role/AppRole/any-session"));
    assert.equal(ok.statusCode, 200, ok.body);
    // Another role of the same account, the same role name in another account: not admitted.
    for (const arn of ["arn:aws:sts::123456789012:assumed-role/OtherRole/app", "arn:aws:sts::999999999999:assumed-role/AppRole/app"]) {
      const wrong = await handler(v2Event("10.0.0.1", { authorization: basic("app") }, arn));
      assert.equal(wrong.statusCode, 403, arn);
      assert.equal(error(wrong)?.message, 'Peer authentication failed for user "app"');
    }
    const mapped = await handler(v2Event("10.0.0.1", { authorization: basic("mapped") }, "arn:aws:iam::123456789012:user/ci/deploy-bot"));
    assert.equal(mapped.statusCode, 200, mapped.body);
    const unmapped = await handler(v2Event("10.0.0.1", { authorization: basic("mapped") }, "arn:aws:iam::123456789012:user/someone-else"));
    assert.equal(unmapped.statusCode, 403);
  });

  test("a session name is the caller's to choose: naming it after a database user admits no one", async () => {
    // Whoever may call AssumeRole on any role, in any account, picks the session name.
    for (const arn of ["arn:aws:sts::999999999999:assumed-role/AnyRole/admin", "arn:aws:sts::999999999999:federated-user/admin", "arn:aws:iam::999999999999:user/admin"]) {
      const r = await handler(v2Event("10.0.0.1", { authorization: basic("admin") }, arn));
      assert.equal(r.statusCode, 403, arn);
      assert.equal(error(r)?.message, 'Peer authentication failed for user "admin"');
    }
  });

  test("a thawed instance whose connections died answers without failing the request", async () => {
    assert.equal((await handler(v2Event("198.51.100.7", { authorization: basic("app") }))).statusCode, 200);
    // What a long freeze does to pooled connections: the server side is gone.
    const ended = await cluster.sql<{ pid: number; port: number }[]>`select pid, client_port as port from pg_stat_activity where usename = 'app'`;
    assert.ok(ended.length > 0, "app has pooled connections");
    await cluster.sql`select pg_terminate_backend(pid) from unnest(${ended.map((e) => e.pid)}::int[]) pid`;
    // Until the handler has closed its end of each (it has seen them end), not a guessed 300 ms.
    // (Idle this briefly, a connection is lent without a probe: what is checked is that a pool
    // whose connections were all ended opens a new one rather than failing the request.)
    await eventually(() => clientConnectionsOpen(cluster.port, ended.map((e) => e.port)) === 0, { what: "the handler to close app's ended connections" });
    const r = await handler(v2Event("198.51.100.7", { authorization: basic("app") }));
    assert.equal(r.statusCode, 200, r.body);
  });

  test("a thawed instance whose pooled connection went silent (a black hole) probes it and answers on a new one", async () => {
    // A frozen instance's sockets are not closed: they go silent (the NAT or the server forgot
    // them). A proxy between the instance and PostgreSQL stops passing anything on the open
    // connection, closing nothing; new connections still pass. A second instance of the bundle
    // (its own module, so its own pools) reaches PostgreSQL only through the proxy.
    const proxy = await startPgProxy(cluster.port);
    const saved = { ...process.env };
    Object.assign(process.env, { HBAGATE_UPSTREAM_PORT: String(proxy.port), HBAGATE_STALE_AFTER_MS: "100", HBAGATE_CONNECT_TIMEOUT: "1", HBAGATE_REQUEST_TIMEOUT_MS: "3000" });
    let thawed: Handler;
    try {
      thawed = ((await import(`${pathToFileURL(bundle).href}?thaw`)) as { handler: Handler }).handler;
    } finally {
      for (const k of ["HBAGATE_UPSTREAM_PORT", "HBAGATE_STALE_AFTER_MS", "HBAGATE_CONNECT_TIMEOUT", "HBAGATE_REQUEST_TIMEOUT_MS"]) process.env[k] = saved[k];
    }
    try {
      const warm = await thawed(v2Event("198.51.100.7", { authorization: basic("app") }));
      assert.equal(warm.statusCode, 200, warm.body);
      const before = proxy.sessions.length;
      proxy.blackHole();
      // Frozen: no requests for longer than HBAGATE_STALE_AFTER_MS (100 ms). The point, not a wait for something.
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const r = await Promise.race([
        thawed(v2Event("198.51.100.7", { authorization: basic("app") })),
        new Promise<{ statusCode: number; body: string }>((resolve) => setTimeout(() => resolve({ statusCode: 0, body: "no answer in 15 s" }), 15_000)),
      ]);
      const ms = Date.now() - started;
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(rows(r), [{ u: "app", tcp: true }]);
      // The probe waits HBAGATE_CONNECT_TIMEOUT (1 s) for the silent connection, then a new one
      // logs in: well within the request's own deadline (3 s), which a statement written into
      // the black hole would run into.
      assert.ok(ms < 2500, `answered in ${ms} ms`);
      assert.ok(proxy.sessions.length > before, "a new connection served it");
    } finally {
      await proxy.close();
    }
  });

  test("browser rules: any Host (AWS routes by host), a listed origin with its CORS headers; other origins and non-JSON bodies refused", async () => {
    const headers = { authorization: basic("app") };
    // The function URL's own domain, and any other: the Host check is off on Lambda unless configured.
    for (const host of ["abc123.lambda-url.eu-west-1.on.aws", "api.example.com"]) {
      const r = await handler(v2Event("198.51.100.7", { ...headers, host }));
      assert.equal(r.statusCode, 200, r.body);
    }
    const listed = await handler(v2Event("198.51.100.7", { ...headers, origin: "https://app.example" }));
    assert.equal(listed.statusCode, 200, listed.body);
    assert.equal(listed.headers?.["access-control-allow-origin"], "https://app.example");
    for (const event of [v2Event("198.51.100.7", { ...headers, origin: "https://evil.example" }), v1Event("198.51.100.8", { ...headers, Origin: "https://evil.example" })]) {
      const r = await handler(event);
      assert.equal(r.statusCode, 403);
      assert.equal(error(r)?.code, "28000");
      assert.match(error(r)?.message ?? "", /origin "https:\/\/evil\.example" is not allowed/);
    }
    const plain = await handler(v2Event("198.51.100.7", { ...headers, "content-type": "text/plain" }));
    assert.equal(plain.statusCode, 415);
    assert.equal(error(plain)?.code, "22P04");
  });

  test("IAM principals: the caller forms IAM authenticates, whole; anything else is none", () => {
    for (const arn of [
      "arn:aws:sts::123456789012:assumed-role/AppRole/app-session",
      "arn:aws:iam::123456789012:user/path/to/bob",
      "arn:aws:iam::123456789012:root",
      "arn:aws:sts::123456789012:federated-user/carol",
      "arn:aws-us-gov:sts::123456789012:assumed-role/R/s",
    ]) {
      assert.equal(iamPrincipal(arn), arn);
    }
    for (const bad of ["nonsense", "admin", "arn:aws:sts::123:assumed-role/R/s", "arn:aws:iam::123456789012:role/R", "arn:aws:sts::123456789012:assumed-role/R/s\nx"]) {
      assert.equal(iamPrincipal(bad), undefined, bad);
    }
  });
});
