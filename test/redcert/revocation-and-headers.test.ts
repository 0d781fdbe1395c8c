// Red team (client certificates): what a reload that revokes a certificate
// leaves standing, and a trusted proxy's header sent twice: findings, fixed,
// and a guarantee that held (session resumption).
import assert from "node:assert/strict";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { after, before, describe, test } from "node:test";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { gatewayDecision, makePki, postTls, type Pki, startCertGateway } from "../harness/client-certs.ts";
import { basic } from "../harness/http.ts";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";

const PROXY = "127.0.0.2";
const CERT = "hostssl all all 127.0.0.1/32 cert\n";
/** gatewayDecision reads 08P01 "could not accept SSL connection: certificate verify failed" as this. */
const REFUSED = "tls refused";

function post(url: string, agent: Agent, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, any>; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${url}/v1/postgres/sql`, { method: "POST", agent, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text), reused: req.reusedSocket }));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ query: "select current_user as u" }));
  });
}

describe("red team: revocation by reload, and a doubled certificate header", { skip: flavorMissing("debian") }, () => {
  let pki: Pki;
  let cluster: Cluster;
  let gateway: RunningGateway;
  let url: string;
  const logs: LogEvent[] = [];

  before(async () => {
    pki = makePki();
    cluster = await startCluster();
    await cluster.sql.unsafe("create role alice login; create role bob login; create role carol login;");
    await cluster.writeHba("host all alice,bob,carol 127.0.0.1/32 trust\n", { reload: true });
    // ALB's header (URL-encoded PEM).
    gateway = await startCertGateway(pki, { hba: CERT }, cluster.port, { proxy: PROXY, header: "x-amzn-mtls-clientcert", logs });
    url = gateway.urls[0]!;
  });
  after(async () => {
    await gateway?.close();
    await cluster?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  test("a certificate revoked by a CRL reload stops authenticating the requests of keep-alive connections opened before", async () => {
    const alice = pki.ca.issue("alice-ka", { cn: "alice" });
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.cert, cert: alice.cert, key: alice.key });
    try {
      const first = await post(url, agent);
      assert.equal(gatewayDecision(first, "alice"), "ok");
      // The operator revokes alice's certificate and reloads (SIGHUP).
      pki.ca.revoke(alice);
      pki.ca.crl();
      assert.equal(await gateway.reload(), true, JSON.stringify(logs.slice(-3)));
      // A new connection with it is refused: the CRL is in force.
      assert.equal(gatewayDecision(await postTls(url, pki.ca, { cert: alice }, { authorization: basic("alice", "") }), "alice"), REFUSED);
      // The connection opened before goes on as alice, request after request (no bound: maxRequestsPerSocket is 0).
      const answers: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await post(url, agent);
        assert.equal(r.reused, true, "the same keep-alive connection");
        answers.push(gatewayDecision(r, "alice"));
      }
      // PostgreSQL checks the CRL on every connection; each request here is an authentication (expiry is re-checked per request).
      assert.deepEqual(answers, [REFUSED, REFUSED, REFUSED]);
    } finally {
      agent.destroy();
    }
  });

  test("a revoked certificate without Authorization is told the certificate failed (08P01), not 'no PostgreSQL user name specified'", async () => {
    // PostgreSQL ends the handshake of a certificate that does not verify before anything else; with Authorization the gateway says so (08P01).
    const r = await postTls(url, pki.ca, { cert: pki.revoked });
    assert.equal(gatewayDecision(r, undefined), REFUSED, JSON.stringify(r.body));
  });

  test("TLS session resumption across the reload does not carry a revoked certificate in", async () => {
    const bob = pki.ca.issue("bob-resume", { cn: "bob" });
    const { port } = new URL(url);
    const opts = { host: "127.0.0.1", port: Number(port), ca: pki.ca.cert, cert: bob.cert, key: bob.key, servername: "localhost", maxVersion: "TLSv1.2" as const };
    const first = tlsConnect(opts);
    first.on("error", () => {});
    await once(first, "secureConnect");
    const session = first.getSession();
    first.end();
    pki.ca.revoke(bob);
    pki.ca.crl();
    assert.equal(await gateway.reload(), true);
    const second: TLSSocket = tlsConnect({ ...opts, ...(session ? { session } : {}) });
    second.on("error", () => {});
    await once(second, "secureConnect");
    const resumed = second.isSessionReused();
    const body = JSON.stringify({ query: "select current_user as u" });
    second.write(`POST /v1/postgres/sql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    let text = "";
    second.on("data", (d) => (text += d));
    await once(second, "end");
    second.destroy();
    assert.doesNotMatch(text.split("\r\n")[0]!, / 200 /, `resumed=${resumed}: ${text}`);
  });

  test("a trusted proxy's certificate header present twice is refused (which one the proxy verified cannot be told)", async () => {
    // The caller holds carol's certificate and key (the proxy verified that handshake) and sends alice's public certificate in the header;
    // a proxy that appends its own header line rather than replacing the client's forwards both, the client's first.
    const carol = pki.ca.issue("carol-hdr", { cn: "carol" });
    const r = await postTls(url, pki.ca, { from: PROXY }, {
      authorization: basic("alice", ""),
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "https",
      "x-amzn-mtls-clientcert": [encodeURIComponent(pki.alice.cert), encodeURIComponent(carol.cert)] as unknown as string,
    });
    // Two certificates where one is expected is ambiguous: refused, never the first one's CN.
    assert.notEqual(r.status, 200, JSON.stringify(r.body));
  });

  test("one header value holding two PEM certificates is refused", async () => {
    const carol = pki.ca.issue("carol-hdr2", { cn: "carol" });
    const r = await postTls(url, pki.ca, { from: PROXY }, {
      authorization: basic("alice", ""),
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "https",
      "x-amzn-mtls-clientcert": encodeURIComponent(pki.alice.cert + carol.cert),
    });
    assert.notEqual(r.status, 200, JSON.stringify(r.body));
  });
});
