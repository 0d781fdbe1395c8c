// The encodings proxies forward a client certificate in (lib/node/client-certs/forwarded-header.ts):
// whichever the wrapping, the certificate read is the one sent, and anything else is an error
// that says what is wrong. Verification against the CA follows (test/auth/cert-node.test.ts).
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { certificateFromHeader } from "../../lib/node/client-certs/forwarded-header.ts";
import { namedCertificate } from "../../lib/node/client-certs/names.ts";
import { DN, makePki, type Pki } from "../harness/client-certs.ts";
import { missingCommands } from "../harness/prerequisites.ts";

const noOpenssl = missingCommands("openssl", ["openssl"]).length > 0 ? "openssl is not on PATH (apt-get install -y openssl)" : false;

describe("forwarded client certificate headers", { skip: noOpenssl }, () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });
  after(() => rmSync(pki.dir, { recursive: true, force: true }));

  const der = () => pki.dn.cert.replace(/-----[A-Z ]+-----|\s/g, "");

  // (The first CN of the DN certificate is its multi-valued RDN's "x", as PostgreSQL reads it.)
  test("Envoy XFCC (the last element's Cert), ALB and nginx (URL-encoded PEM, +=/ left as they are), Traefik (base64 DER)", () => {
    const escaped = encodeURIComponent(pki.dn.cert).replace(/%2B/g, "+").replace(/%3D/g, "=").replace(/%2F/g, "/");
    const values: [string, string][] = [
      ["x-forwarded-client-cert", `By=spiffe://a;Cert="${encodeURIComponent(pki.alice.cert)}",By=spiffe://b;Hash=ab;Cert="${encodeURIComponent(pki.dn.cert)}";Subject="CN=svc, O=x"`],
      ["x-amzn-mtls-clientcert", escaped],
      ["x-ssl-client-cert", encodeURIComponent(pki.dn.cert)],
      ["x-forwarded-tls-client-cert", der()],
      ["x-client-cert", pki.dn.cert.replace(/\n/g, " ")],
    ];
    for (const [name, value] of values) assert.deepEqual(namedCertificate(certificateFromHeader(name, value)), { verified: true, names: { cn: "x", dn: DN } }, name);
  });

  test("anything else is an error saying what is wrong, never a certificate", () => {
    for (const [name, value, why] of [
      ["x-forwarded-client-cert", "By=x;Hash=y", /no Cert field/],
      ["x-forwarded-client-cert", 'Cert="abc', /unterminated quoted value/],
      ["x-amzn-mtls-clientcert", "%E0%A4%A", /invalid URL encoding/],
      ["x-amzn-mtls-clientcert", "not base64!", /not a PEM or base64 certificate/],
      ["x-amzn-mtls-clientcert", Buffer.from("just text").toString("base64"), /not a certificate/],
      ["x-amzn-mtls-clientcert", "", /not a/],
    ] as const) {
      assert.throws(() => certificateFromHeader(name, value), why, `${name}: ${value}`);
    }
  });
});
