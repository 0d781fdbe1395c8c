// HBAGATE_TLS_CLIENT_CA_FILE and HBAGATE_TLS_CLIENT_CRL_FILE as files an
// operator edits: a bad one stops the start with the file and the entry
// named; a reload applies a new CRL to the TLS listener, and a bad reload
// keeps the CA and CRL in force (PostgreSQL keeps its SSL context then).
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { gatewayDecision, makePki, postTls, type Pki } from "../harness/client-certs.ts";
import { makeCa } from "../harness/certs.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { missingCommands } from "../harness/prerequisites.ts";

const noOpenssl = missingCommands("openssl", ["openssl"]).length > 0 ? "openssl is not on PATH (apt-get install -y openssl)" : false;

describe("client CA and CRL files: start, reload, and bad files", { skip: noOpenssl }, () => {
  let pki: Pki;
  let dir: string;
  let crlFile: string;
  let caFile: string;
  const gateways: RunningGateway[] = [];
  before(() => {
    pki = makePki();
    dir = mkdtempSync(join(tmpdir(), "hbagate-ca-files-"));
    writeFileSync(join(dir, "pg_hba.conf"), "hostssl all all 127.0.0.1/32 cert\n");
    crlFile = join(dir, "clients.crl");
    caFile = join(dir, "clients-ca.crt");
    copyFileSync(pki.crlFile, crlFile);
    copyFileSync(pki.ca.certFile, caFile);
  });
  after(async () => {
    for (const g of gateways) await g.close();
    rmSync(dir, { recursive: true, force: true });
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}) => ({
    HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"),
    HBAGATE_TLS_CERT_FILE: pki.server.certFile,
    HBAGATE_TLS_KEY_FILE: pki.server.keyFile,
    HBAGATE_TLS_CLIENT_CA_FILE: caFile,
    HBAGATE_TLS_CLIENT_CRL_FILE: crlFile,
    ...extra,
  });

  /** Start with files that cannot be used: undefined, and the one error logged. */
  async function refusedStart(extra: Record<string, string>): Promise<string> {
    const logs: LogEvent[] = [];
    const g = await startGateway(nodeSettings(env(extra)), (e) => logs.push(e));
    await g?.close();
    assert.equal(g, undefined, "the gateway started");
    const refusal = logs.find((l) => l.msg === "not starting: the client certificate CA or CRL cannot be used");
    assert.ok(refusal, JSON.stringify(logs));
    return String(refusal.error);
  }

  test("a CA or CRL file that cannot be used stops the start, naming the setting, the file and the entry", async () => {
    const bad = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const missing = join(dir, "absent.crt");
    assert.match(await refusedStart({ HBAGATE_TLS_CLIENT_CA_FILE: missing }), new RegExp(`^HBAGATE_TLS_CLIENT_CA_FILE="${missing}": No such file or directory`));
    const empty = bad("empty.crt", "not a certificate\n");
    assert.equal(await refusedStart({ HBAGATE_TLS_CLIENT_CA_FILE: empty }), `HBAGATE_TLS_CLIENT_CA_FILE="${empty}": no PEM certificate (-----BEGIN CERTIFICATE-----) in the file`);
    const broken = bad("broken.crt", `${pki.ca.cert}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`);
    assert.match(await refusedStart({ HBAGATE_TLS_CLIENT_CA_FILE: broken }), new RegExp(`^HBAGATE_TLS_CLIENT_CA_FILE="${broken}": certificate #2 is not a valid certificate`));
    const leaf = bad("leaf.crt", pki.alice.cert);
    assert.match(await refusedStart({ HBAGATE_TLS_CLIENT_CA_FILE: leaf }), /certificate #1 \(CN=alice\) is not a CA certificate/);
    const noCrl = bad("none.crl", pki.ca.cert);
    assert.equal(await refusedStart({ HBAGATE_TLS_CLIENT_CRL_FILE: noCrl }), `HBAGATE_TLS_CLIENT_CRL_FILE="${noCrl}": no PEM CRL (-----BEGIN X509 CRL-----) in the file`);
    const garbled = bad("garbled.crl", "-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n");
    assert.match(await refusedStart({ HBAGATE_TLS_CLIENT_CRL_FILE: garbled }), new RegExp(`^HBAGATE_TLS_CLIENT_CRL_FILE="${garbled}": CRL #1 is not a valid CRL`));
    const strangerCa = makeCa(dir, "stranger", { cn: "hbagate test CA" });
    const stranger = bad("stranger.crl", strangerCa.crl().crl);
    assert.equal(await refusedStart({ HBAGATE_TLS_CLIENT_CRL_FILE: stranger }), `HBAGATE_TLS_CLIENT_CRL_FILE="${stranger}": CRL #1 is not signed by any certificate in HBAGATE_TLS_CLIENT_CA_FILE`);
  });

  test("a reload applies a new CRL to the listener; a broken one is refused and the previous CRL stays", async () => {
    const logs: LogEvent[] = [];
    const g = await startNodeGateway(nodeSettings(env()), logs);
    gateways.push(g);
    const url = g.urls[0]!;
    // The embedded upstream has one role: which one the caller asked for is the rules' business here.
    const as = async (cert: typeof pki.alice, _user: string) => gatewayDecision(await postTls(url, pki.ca, { cert }), undefined);
    assert.equal(await as(pki.bob, "bob"), "ok");
    pki.ca.revoke(pki.bob);
    writeFileSync(crlFile, pki.ca.crl().crl);
    assert.equal(await g.reload(), true, JSON.stringify(logs.slice(-3)));
    assert.equal(await as(pki.bob, "bob"), "tls refused");
    assert.equal(await as(pki.alice, "alice"), "ok");
    writeFileSync(crlFile, "-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n");
    assert.equal(await g.reload(), false);
    assert.ok(logs.some((l) => l.msg === "client certificate CA or CRL has errors; keeping the previous ones" && String(l.error).startsWith(`HBAGATE_TLS_CLIENT_CRL_FILE="${crlFile}": CRL #1 is not a valid CRL`)), JSON.stringify(logs.slice(-3)));
    // The previous CRL, not none: bob stays revoked, alice gets in.
    assert.equal(await as(pki.bob, "bob"), "tls refused");
    assert.equal(await as(pki.alice, "alice"), "ok");
  });
});
