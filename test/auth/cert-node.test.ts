// Client certificates on the Node server over TLS: the `cert` method and
// clientcert= (HBAGATE_TLS_CLIENT_CA_FILE, HBAGATE_TLS_CLIENT_CRL_FILE), each
// decision checked in the same test against a real PostgreSQL with the same
// CA, CRL, certificates, hba line and pg_ident.conf map.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { askPostgres, DN, gatewayDecision, makePki, postTls, sslCluster, xfcc, type Client, type Decision, type Pki, startCertGateway } from "../harness/client-certs.ts";
import { basic } from "../harness/http.ts";
import { flavorMissing, type Cluster } from "../harness/postgres.ts";

const ROLES = ["alice", "bob", "svc", DN] as const;

/** The TLS-terminating proxy the gateway trusts. */
const PROXY = "127.0.0.2";


describe("client certificates on the Node server: every decision PostgreSQL's", { skip: flavorMissing("debian", { ssl: true }) }, () => {
  let pki: Pki;
  let cluster: Cluster;
  let gateway: RunningGateway;
  let url: string;
  let dir: string;
  const logs: LogEvent[] = [];
  const IDENT = String.raw`
mail alice@example.com alice
regex /^(.*)@example\.com$ \1
dn "CN=svc,OU=ops+CN=x,O=Acme\, Inc.,DC=example,DC=com" svc
`;

  before(async () => {
    pki = makePki();
    cluster = await sslCluster(pki);
    for (const role of ROLES) await cluster.sql.unsafe(`create role "${role.replace(/"/g, '""')}" login password 'pw-${ROLES.indexOf(role)}'`);
    await cluster.writeIdent(IDENT);
    dir = pki.dir;
    const roles = Object.fromEntries(ROLES.map((r, i) => [r, `pw-${i}`]));
    gateway = await startCertGateway(pki, { hba: "hostssl all all 127.0.0.1/32 reject\n", ident: IDENT, roles }, cluster.port, { proxy: PROXY, logs });
    url = gateway.urls[0]!;
  });
  after(async () => {
    await gateway?.close();
    await cluster?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  /**
   * The same hba line on both servers (the upstream's own logins, without TLS, by password first),
   * the same attempt on both: the gateway decides what PostgreSQL decides, and that is `expected`.
   */
  async function same(line: string, client: Client, user: string, expected: Decision, password?: string): Promise<void> {
    await cluster.writeHba(`hostnossl all all 127.0.0.1/32 scram-sha-256\n${line}\n`, { reload: true });
    writeFileSync(join(dir, "pg_hba.conf"), `${line}\n`);
    assert.equal(await gateway.reload(), true, JSON.stringify(logs.slice(-3)));
    const theirs = await askPostgres(cluster, pki.ca, client, user, password);
    const ours = gatewayDecision(await postTls(url, pki.ca, client, { authorization: basic(user, password ?? "") }), user);
    assert.equal(theirs, expected, `PostgreSQL decided otherwise for ${line} as ${user}`);
    assert.equal(ours, theirs, `${line} as ${user}`);
  }

  const CERT = "hostssl all all 127.0.0.1/32 cert";

  test("cert: the right CN gets rows; another user, no certificate and a certificate without a CN are refused", async () => {
    await same(CERT, { cert: pki.alice }, "alice", "ok");
    await same(CERT, { cert: pki.alice }, "bob", '28000 certificate authentication failed for user "bob"');
    await same(CERT, {}, "alice", "28000 connection requires a valid client certificate");
    await same(CERT, { cert: pki.noCn }, "alice", '28000 certificate authentication failed for user "alice"');
  });

  test("cert map=: a literal map allows its pair only; a regex map with \\1", async () => {
    await same(`${CERT} map=mail`, { cert: pki.aliceMail }, "alice", "ok");
    await same(`${CERT} map=mail`, { cert: pki.aliceMail }, "bob", '28000 certificate authentication failed for user "bob"');
    // The map replaces the plain comparison: CN=alice is not in it.
    await same(`${CERT} map=mail`, { cert: pki.alice }, "alice", '28000 certificate authentication failed for user "alice"');
    await same(`${CERT} map=regex`, { cert: pki.aliceMail }, "alice", "ok");
    await same(`${CERT} map=regex`, { cert: pki.bob }, "bob", '28000 certificate authentication failed for user "bob"');
  });

  test("clientname=DN: the whole subject in RFC 2253 form, escapes and a multi-valued RDN included", async () => {
    // The DN itself as a role name, and through a map.
    await same(`${CERT} clientname=DN`, { cert: pki.dn }, DN, "ok");
    await same(`${CERT} clientname=DN`, { cert: pki.dn }, "svc", '28000 certificate authentication failed for user "svc"');
    await same(`${CERT} clientname=DN map=dn`, { cert: pki.dn }, "svc", "ok");
    // With the default clientname=CN the first CN in the subject decides (here the multi-valued RDN's "x").
    await same(CERT, { cert: pki.dn }, "svc", '28000 certificate authentication failed for user "svc"');
  });

  test("certificates that do not verify end the connection whatever the line: expired, not yet valid, revoked, another CA", async () => {
    for (const cert of [pki.expired, pki.notYetValid, pki.revoked, pki.foreign]) {
      await same(CERT, { cert }, "alice", "tls refused");
      await same("hostssl all all 127.0.0.1/32 trust", { cert }, "alice", "tls refused");
    }
    // Without a certificate a trust line needs none: the listener did not refuse the handshake.
    await same("hostssl all all 127.0.0.1/32 trust", {}, "alice", "ok");
  });

  test("clientcert=verify-ca on scram-sha-256 needs both: the password, and a certificate of any name from the CA", async () => {
    const line = "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca";
    await same(line, { cert: pki.bob }, "alice", "ok", "pw-0");
    await same(line, {}, "alice", "28000 connection requires a valid client certificate", "pw-0");
    await same(line, { cert: pki.alice }, "alice", '28P01 password authentication failed for user "alice"', "wrong");
    await same(line, { cert: pki.revoked }, "alice", "tls refused", "pw-0");
  });

  test("clientcert=verify-full adds the name check after the method, failing with the method's own words", async () => {
    await same("hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full", { cert: pki.alice }, "alice", "ok", "pw-0");
    await same("hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full", { cert: pki.bob }, "alice", '28P01 password authentication failed for user "alice"', "pw-0");
    await same("hostssl all all 127.0.0.1/32 trust clientcert=verify-full", { cert: pki.bob }, "alice", '28000 "trust" authentication failed for user "alice"');
    await same("hostssl all all 127.0.0.1/32 trust clientcert=verify-full clientname=DN", { cert: pki.dn }, DN, "ok");
  });

  test("without Authorization, a verified certificate names the role by its CN", async () => {
    writeFileSync(join(dir, "pg_hba.conf"), `${CERT}\n`);
    assert.equal(await gateway.reload(), true);
    const r = await postTls(url, pki.ca, { cert: pki.bob });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ u: "bob" }]);
  });

  /**
   * Behind the trusted proxy: the client's certificate is what the proxy forwards (verified here against
   * the CA), and the client its X-Forwarded-For, over the TLS the proxy says it used.
   */
  async function sameBehindProxy(line: string, client: Client, header: string, user: string, expected: Decision): Promise<void> {
    await cluster.writeHba(`hostnossl all all 127.0.0.1/32 scram-sha-256\n${line}\n`, { reload: true });
    writeFileSync(join(dir, "pg_hba.conf"), `${line}\n`);
    assert.equal(await gateway.reload(), true);
    const theirs = await askPostgres(cluster, pki.ca, client, user);
    const ours = gatewayDecision(
      await postTls(url, pki.ca, { from: PROXY }, { authorization: basic(user), "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "https", "x-forwarded-client-cert": header }),
      user,
    );
    assert.equal(theirs, expected, `PostgreSQL decided otherwise for ${line} as ${user}`);
    assert.equal(ours, theirs, `${line} as ${user} behind the proxy`);
  }

  test("a trusted proxy's X-Forwarded-Client-Cert is the client's certificate, verified against the same CA and CRL", async () => {
    await sameBehindProxy(CERT, { cert: pki.alice }, xfcc(pki.alice), "alice", "ok");
    await sameBehindProxy(CERT, { cert: pki.alice }, xfcc(pki.alice), "bob", '28000 certificate authentication failed for user "bob"');
    await sameBehindProxy(`${CERT} map=regex`, { cert: pki.aliceMail }, xfcc(pki.aliceMail), "alice", "ok");
    await sameBehindProxy(`${CERT} clientname=DN`, { cert: pki.dn }, xfcc(pki.dn), DN, "ok");
    // The proxy's word is not enough: another CA's certificate, an expired or a revoked one is refused.
    for (const cert of [pki.foreign, pki.expired, pki.revoked]) await sameBehindProxy(CERT, { cert }, xfcc(cert), "alice", "tls refused");
  });

  test("a forged certificate header from anyone but the trusted proxy changes nothing", async () => {
    const forged = { authorization: basic("alice"), "x-forwarded-client-cert": xfcc(pki.alice), "x-forwarded-proto": "https", "x-forwarded-for": "127.0.0.1" };
    // No certificate of its own: PostgreSQL's answer to a caller without one.
    await same(CERT, {}, "alice", "28000 connection requires a valid client certificate");
    assert.equal(gatewayDecision(await postTls(url, pki.ca, {}, forged), "alice"), "28000 connection requires a valid client certificate");
    // Its own certificate (bob's) is what counts, not the header naming alice.
    await same(CERT, { cert: pki.bob }, "alice", '28000 certificate authentication failed for user "alice"');
    assert.equal(gatewayDecision(await postTls(url, pki.ca, { cert: pki.bob }, forged), "alice"), '28000 certificate authentication failed for user "alice"');
  });

  test("behind the trusted proxy its own TLS certificate is never the client's; a garbage header is a clear refusal", async () => {
    writeFileSync(join(dir, "pg_hba.conf"), `${CERT}\n`);
    assert.equal(await gateway.reload(), true);
    const relayed = { authorization: basic("alice"), "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "https" };
    const own = await postTls(url, pki.ca, { from: PROXY, cert: pki.alice }, relayed);
    assert.equal(gatewayDecision(own, "alice"), "28000 connection requires a valid client certificate");
    for (const garbage of ["Cert=%%%", "Hash=abc", 'Cert="-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----"', `Cert="${"x".repeat(4000)}"`, 'Cert="unterminated']) {
      const r = await postTls(url, pki.ca, { from: PROXY }, { ...relayed, "x-forwarded-client-cert": garbage });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, "08P01");
      assert.match(r.body.error.detail, /^The client certificate was refused: the x-forwarded-client-cert header does not hold a certificate: /);
    }
    // Still serving.
    assert.equal(gatewayDecision(await postTls(url, pki.ca, { cert: pki.alice }, { authorization: basic("alice") }), "alice"), "ok");
  });

  test("renegotiation is refused: the certificate a connection was judged by cannot change under it", async () => {
    const { port } = new URL(url);
    // TLS 1.2: 1.3 has no renegotiation.
    const socket = tlsConnect({ host: "127.0.0.1", port: Number(port), ca: pki.ca.cert, cert: pki.bob.cert, key: pki.bob.key, maxVersion: "TLSv1.2" });
    socket.on("error", () => {});
    await once(socket, "secureConnect");
    assert.equal(socket.authorized, true);
    const outcome = await Promise.race([
      new Promise<string>((resolve) => {
        const asked = socket.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err ? "refused" : "renegotiated"));
        if (!asked) resolve("refused");
        socket.once("close", () => resolve("closed by the server"));
        // Reading, so that the server's answer (a renegotiated session, or the connection ended) is seen.
        socket.resume();
        socket.write(`GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
      }),
      // Bounded: a server that neither renegotiates nor ends the connection leaves the client waiting.
      new Promise<string>((resolve) => setTimeout(() => resolve("left hanging"), 5000).unref()),
    ]);
    socket.destroy();
    assert.ok(outcome === "refused" || outcome === "closed by the server", outcome);
  });
});
