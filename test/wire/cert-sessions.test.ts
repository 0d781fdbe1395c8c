// Client certificates serve sessions too: a `cert` line over PostgreSQL's
// port (node-postgres with sslcert) and over wss:// (the TLS listener asks for
// the certificate at the handshake the upgrade rides on), each decision as
// for HTTP: the CN names the role, a revoked or missing certificate is refused.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { makePki, type Pki } from "../harness/client-certs.ts";
import { freePort } from "../harness/process.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { RawSession, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import type { Issued } from "../harness/certs.ts";

describe("client certificates on sessions", () => {
  let cluster: Cluster;
  let pki: Pki;
  let gw: SessionGateway;
  let port: number;
  before(async () => {
    pki = makePki();
    cluster = await startCluster();
    await cluster.sql.unsafe("create role alice login; create role bob login;");
    await cluster.writeHba("host all alice,bob 127.0.0.1/32 trust\n", { reload: true });
    port = await freePort();
    gw = await startSessionGateway("hostssl all all 127.0.0.1/32 cert\n", cluster.port, {
      HBAGATE_PG_PORT: String(port),
      HBAGATE_TLS_CERT_FILE: pki.server.certFile,
      HBAGATE_TLS_KEY_FILE: pki.server.keyFile,
      HBAGATE_TLS_CLIENT_CA_FILE: pki.ca.certFile,
      HBAGATE_TLS_CLIENT_CRL_FILE: pki.crlFile,
    });
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  const viaPgPort = async (user: string, cert: Issued | undefined) => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user,
      database: "postgres",
      ssl: { ca: pki.ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
    });
    client.on("error", () => {});
    try {
      await client.connect();
      return (await client.query("select current_user as u")).rows[0].u as string;
    } catch (e) {
      return `${(e as { code?: string }).code} ${(e as Error).message}`;
    } finally {
      await client.end().catch(() => {});
    }
  };

  test("PostgreSQL's port: the CN is the role; another user's name, no certificate and a revoked one are refused", async () => {
    assert.equal(await viaPgPort("alice", pki.alice), "alice");
    assert.equal(await viaPgPort("bob", pki.alice), '28000 certificate authentication failed for user "bob"');
    assert.equal(await viaPgPort("alice", undefined), "28000 connection requires a valid client certificate");
    assert.match(await viaPgPort("alice", pki.revoked), /^08P01 could not accept SSL connection: certificate verify failed/);
  });

  test("wss://: the certificate of the TLS connection the upgrade rides on", async () => {
    const open = (cert: Issued | undefined) =>
      new RawSession(`wss://127.0.0.1:${new URL(gw.gateway.urls[0]!).port}/v2`, {}, { ca: readFileSync(pki.ca.certFile), ...(cert ? { cert: cert.cert, key: cert.key } : {}) });
    const s = open(pki.alice);
    await s.login({ user: "alice", database: "postgres" });
    s.close();
    const none = open(undefined);
    await assert.rejects(none.login({ user: "alice", database: "postgres" }), (e: { code?: string; message?: string }) => e.code === "28000" && e.message === "connection requires a valid client certificate");
  });
});
