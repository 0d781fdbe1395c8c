// Client certificates on Lambda behind API Gateway's mutual TLS: the built
// handler, events shaped as API Gateway sends them (an HTTP API's
// requestContext.authentication.clientCert, a REST API's
// identity.clientCert), each decision checked against a real PostgreSQL with
// the same CA, certificates and line. A header naming a certificate is not
// the request context: it changes nothing.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Issued } from "../harness/certs.ts";
import { askPostgres, makePki, sslCluster, xfcc, type Decision, type Pki } from "../harness/client-certs.ts";
import { flavorMissing, type Cluster } from "../harness/postgres.ts";
import { buildHandler, functionUrlEvent, importHandler, type Handler, type LambdaResult } from "./events.ts";

/** What API Gateway puts in the request context for a verified client certificate. */
function clientCert(cert: Issued) {
  return {
    clientCertPem: cert.cert,
    subjectDN: "CN=ignored",
    issuerDN: "CN=hbagate test CA",
    serialNumber: "00:11",
    validity: { notBefore: "Nov 30 00:00:00 2026 GMT", notAfter: "Dec  2 00:00:00 2026 GMT" },
  };
}

/** An API Gateway HTTP API request (payload 2.0) on a custom domain with mutual TLS. */
function httpApiEvent(user: string, cert: Issued | undefined, headers: Record<string, string> = {}) {
  const event = functionUrlEvent({ query: "select current_user as u" }, { sourceIp: "127.0.0.1", headers: { host: "db.example.com", authorization: "Basic " + Buffer.from(`${user}:`).toString("base64"), ...headers } });
  return { ...event, requestContext: { ...event.requestContext, domainName: "db.example.com", authentication: cert ? { clientCert: clientCert(cert) } : null } };
}

/** The same on a REST API (payload 1.0): the certificate under identity. */
function restApiEvent(user: string, cert: Issued) {
  return {
    resource: "/{proxy+}",
    path: "/v1/postgres/sql",
    httpMethod: "POST",
    headers: { "content-type": "application/json", host: "db.example.com", authorization: "Basic " + Buffer.from(`${user}:`).toString("base64") },
    multiValueHeaders: {},
    queryStringParameters: null,
    pathParameters: { proxy: "v1/postgres/sql" },
    requestContext: {
      resourcePath: "/{proxy+}",
      httpMethod: "POST",
      path: "/prod/v1/postgres/sql",
      stage: "prod",
      requestId: "r-1",
      identity: { sourceIp: "127.0.0.1", userArn: null, accessKey: null, clientCert: clientCert(cert) },
    },
    body: JSON.stringify({ query: "select current_user as u" }),
    isBase64Encoded: false,
  };
}

function decision(r: LambdaResult, user: string): Decision {
  const body = JSON.parse(r.body);
  if (r.statusCode === 200) {
    assert.deepEqual(body.rows, [{ u: user }]);
    return "ok";
  }
  if (body.error.code === "08P01" && body.error.message === "could not accept SSL connection: certificate verify failed") return "tls refused";
  return `${body.error.code} ${body.error.message}`;
}

describe("client certificates on Lambda behind API Gateway mutual TLS", { skip: flavorMissing("debian", { ssl: true }) }, () => {
  let pki: Pki;
  let cluster: Cluster;
  let handler: Handler;
  let hba: string;
  const consoleLog = console.log;
  const LINE = "hostssl all all 127.0.0.1/32 cert";

  before(async () => {
    pki = makePki();
    const bundle = await buildHandler();
    cluster = await sslCluster(pki);
    await cluster.sql.unsafe("create role alice login password 'a-pw'; create role bob login password 'b-pw'");
    await cluster.writeHba(`hostnossl all all 127.0.0.1/32 scram-sha-256\n${LINE}\n`, { reload: true });
    hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, `${LINE}\n`);
    writeFileSync(join(dirname(bundle), "roles.json"), JSON.stringify({ alice: "a-pw", bob: "b-pw" }));
    Object.assign(process.env, {
      HBAGATE_HBA_FILE: hba,
      HBAGATE_ROLE_CREDENTIALS_FILE: join(dirname(bundle), "roles.json"),
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      HBAGATE_UPSTREAM_SSL: "disable",
      // Checked here too: API Gateway checks no CRL.
      HBAGATE_TLS_CLIENT_CA_FILE: pki.ca.certFile,
      HBAGATE_TLS_CLIENT_CRL_FILE: pki.crlFile,
    });
    console.log = () => {};
    try {
      handler = await importHandler(bundle);
    } finally {
      console.log = consoleLog;
    }
  });
  after(async () => {
    for (const k of ["HBAGATE_HBA_FILE", "HBAGATE_ROLE_CREDENTIALS_FILE", "HBAGATE_UPSTREAM_HOST", "HBAGATE_UPSTREAM_PORT", "HBAGATE_UPSTREAM_SSL", "HBAGATE_TLS_CLIENT_CA_FILE", "HBAGATE_TLS_CLIENT_CRL_FILE"]) delete process.env[k];
    await cluster?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  const invoke = async (event: unknown) => {
    console.log = () => {};
    try {
      return await handler(event);
    } finally {
      console.log = consoleLog;
    }
  };

  async function same(cert: Issued | undefined, user: string, expected: Decision): Promise<void> {
    const theirs = await askPostgres(cluster, pki.ca, cert ? { cert } : {}, user);
    assert.equal(theirs, expected, `PostgreSQL decided otherwise as ${user}`);
    assert.equal(decision(await invoke(httpApiEvent(user, cert)), user), theirs, `HTTP API as ${user}`);
    if (cert) assert.equal(decision(await invoke(restApiEvent(user, cert)), user), theirs, `REST API as ${user}`);
  }

  test("the certificate in the request context: right CN, another user, none, and one API Gateway would pass but the CRL revokes", async () => {
    await same(pki.alice, "alice", "ok");
    await same(pki.alice, "bob", '28000 certificate authentication failed for user "bob"');
    await same(undefined, "alice", "28000 connection requires a valid client certificate");
    await same(pki.revoked, "alice", "tls refused");
  });

  test("a caller's header claiming a certificate is not the request context", async () => {
    const r = await invoke(httpApiEvent("alice", undefined, { "x-forwarded-client-cert": xfcc(pki.alice), "x-amzn-mtls-clientcert": encodeURIComponent(pki.alice.cert) }));
    assert.equal(decision(r, "alice"), "28000 connection requires a valid client certificate");
  });
});
