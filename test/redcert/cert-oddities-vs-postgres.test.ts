// Red team (client certificates): legal certificates from the trusted CA that
// the harness does not make, each shown to a real PostgreSQL (same CA, CRL,
// hba line, pg_ident.conf) and to the gateway — over its TLS listener and
// through the trusted proxy's header. Each was a finding (the gateway decided
// otherwise than PostgreSQL) and now decides as PostgreSQL does.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import type { Issued } from "../harness/certs.ts";
import { gatewayDecision, makePki, postTls, sslCluster, xfcc, type Client, type Decision, type Pki, startCertGateway } from "../harness/client-certs.ts";
import { basic } from "../harness/http.ts";
import { flavorMissing, type Cluster } from "../harness/postgres.ts";
import { askOnce, bmpConfig, issueFromConfig, plainConfig, replaceBytes, resigned, unknownOidConfig } from "./odd-certs.ts";

const PROXY = "127.0.0.2";
const ROLES = ["alice", "bob"] as const;

describe("red team: odd certificates from the trusted CA, gateway vs PostgreSQL", { skip: flavorMissing("debian", { ssl: true }) }, () => {
  let pki: Pki;
  let cluster: Cluster;
  let gateway: RunningGateway;
  let url: string;
  let dir: string;
  const logs: LogEvent[] = [];
  const certs: Record<string, Issued> = {};
  // "lead": a map keeping the leading letters of a CN (a prefix match, as PostgreSQL's regexes allow).
  const IDENT = String.raw`
lead /^([a-z]+) \1
dnhex "CN=alice,1.2.3.4.5=#0C03666F6F" alice
dntext "CN=alice,1.2.3.4.5=foo" alice
`;

  before(async () => {
    pki = makePki();
    dir = pki.dir;
    // CN "alice\0.evil.example": CVE-2009-4034's null-prefix name, really signed by the CA.
    certs.nul = resigned(dir, pki.ca, pki.ca.issue("nul-src", { cn: "aliceX.evil.example" }), "nul", replaceBytes("aliceX", Buffer.from("alice\0", "latin1")));
    // CN=alice as a BMPString (UTF-16BE: 00 61 00 6c …).
    certs.bmp = issueFromConfig(dir, pki.ca, "bmp", bmpConfig("alice"));
    // 1.2.3.4.5=foo, CN=alice: an attribute type OpenSSL has no name for.
    certs.oid = issueFromConfig(dir, pki.ca, "oid", unknownOidConfig("foo", "alice"));
    // keyUsage keyEncipherment only (no digitalSignature): not for TLS client authentication (X509_PURPOSE_SSL_CLIENT).
    certs.ku = issueFromConfig(dir, pki.ca, "ku", plainConfig("alice"), ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,keyEncipherment", "extendedKeyUsage=clientAuth"]);
    // Netscape cert type "server" only.
    certs.ns = issueFromConfig(dir, pki.ca, "ns", plainConfig("alice"), ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "nsCertType=server"]);

    cluster = await sslCluster(pki);
    for (const role of ROLES) await cluster.sql.unsafe(`create role "${role}" login password 'pw-${role}'`);
    await cluster.writeIdent(IDENT);
    const roles = Object.fromEntries(ROLES.map((r) => [r, `pw-${r}`]));
    gateway = await startCertGateway(pki, { hba: "hostssl all all 127.0.0.1/32 reject\n", ident: IDENT, roles }, cluster.port, { proxy: PROXY, logs });
    url = gateway.urls[0]!;
  });
  after(async () => {
    await gateway?.close();
    await cluster?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  /** The answer, or undefined when none came in 10 s (a request left hanging). */
  const bounded = <T,>(p: Promise<T>): Promise<T | undefined> =>
    Promise.race([p, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref())]);

  async function setLine(line: string): Promise<void> {
    await cluster.writeHba(`hostnossl all all 127.0.0.1/32 scram-sha-256\n${line}\n`, { reload: true });
    writeFileSync(join(dir, "pg_hba.conf"), `${line}\n`);
    assert.equal(await gateway.reload(), true, JSON.stringify(logs.slice(-3)));
  }

  /** PostgreSQL's decision, then the gateway's over its own TLS listener and through the trusted proxy's XFCC header. */
  async function decisions(line: string, client: Client, user: string): Promise<{ postgres: Decision; listener: string; header: string }> {
    await setLine(line);
    const postgres = (await askOnce(cluster.port, pki.ca.cert, client.cert, user)) as Decision;
    let listener: Decision | "client refused" | "no answer in 10 s";
    try {
      const r = await bounded(postTls(url, pki.ca, client, { authorization: basic(user, "") }));
      listener = r === undefined ? "no answer in 10 s" : gatewayDecision(r, user);
    } catch {
      listener = "client refused";
    }
    const h = await bounded(
      postTls(url, pki.ca, { from: PROXY }, { authorization: basic(user, ""), "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "https", "x-forwarded-client-cert": xfcc(client.cert!) }),
    );
    const header = h === undefined ? "no answer in 10 s" : gatewayDecision(h, user);
    return { postgres, listener, header };
  }

  test("a CN with an embedded NUL (alice\\0.evil.example) is refused, as PostgreSQL refuses it (CVE-2009-4034), even where a prefix map would match", async () => {
    const d = await decisions("hostssl all all 127.0.0.1/32 cert map=lead", { cert: certs.nul! }, "alice");
    assert.equal(d.postgres, "tls refused", "PostgreSQL: SSL certificate's common name contains embedded null");
    assert.deepEqual(d, { postgres: "tls refused", listener: "tls refused", header: "tls refused" });
  });

  test("a CN with an embedded NUL is refused on a clientcert=verify-ca line too (PostgreSQL ends the handshake)", async () => {
    const d = await decisions("hostssl all all 127.0.0.1/32 trust clientcert=verify-ca", { cert: certs.nul! }, "bob");
    assert.equal(d.postgres, "tls refused");
    assert.deepEqual(d, { postgres: "tls refused", listener: "tls refused", header: "tls refused" });
  });

  test("CN=alice as a BMPString is read as its raw UTF-16 bytes (an embedded NUL: refused), as PostgreSQL reads it", async () => {
    const d = await decisions("hostssl all all 127.0.0.1/32 cert", { cert: certs.bmp! }, "alice");
    assert.equal(d.postgres, "tls refused");
    assert.deepEqual(d, { postgres: "tls refused", listener: "tls refused", header: "tls refused" });
  });

  test("clientname=DN with an attribute OpenSSL has no name for: dumped as hex (1.2.3.4.5=#0C03666F6F) as in PostgreSQL's RFC 2253 DN, so a map on its text admits no one", async () => {
    // (PostgreSQL 15 then fails even where its own DN matched: 22023 "could not get NID for ASN1_OBJECT object" at backend start.)
    const text = await decisions("hostssl all all 127.0.0.1/32 cert clientname=DN map=dntext", { cert: certs.oid! }, "alice");
    assert.notEqual(text.postgres, "ok");
    assert.notEqual(text.listener, "ok", JSON.stringify(text));
    assert.notEqual(text.header, "ok", JSON.stringify(text));
  });

  test("a certificate whose keyUsage lacks digitalSignature is not for client authentication: refused through the proxy header as by PostgreSQL and the listener", async () => {
    const d = await decisions("hostssl all all 127.0.0.1/32 cert", { cert: certs.ku! }, "alice");
    assert.notEqual(d.postgres, "ok", "PostgreSQL refuses it (X509_V_ERR_INVALID_PURPOSE)");
    assert.equal(d.header, d.postgres, `header path: ${JSON.stringify(d)}`);
  });

  test("a certificate with nsCertType=server only is refused through the proxy header, as by PostgreSQL", async () => {
    const d = await decisions("hostssl all all 127.0.0.1/32 cert", { cert: certs.ns! }, "alice");
    assert.notEqual(d.postgres, "ok");
    assert.equal(d.header, d.postgres, `header path: ${JSON.stringify(d)}`);
  });

  test("the CA's own certificate as a client certificate is refused through the proxy header on a verify-ca line, as by PostgreSQL", async () => {
    const ca: Issued = { certFile: pki.ca.certFile, keyFile: pki.ca.keyFile, cert: pki.ca.cert, key: pki.ca.key };
    const d = await decisions("hostssl all all 127.0.0.1/32 trust clientcert=verify-ca", { cert: ca }, "alice");
    assert.notEqual(d.postgres, "ok");
    assert.equal(d.header, d.postgres, `header path: ${JSON.stringify(d)}`);
  });
});
