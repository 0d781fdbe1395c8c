// What the client certificate tests share: a throwaway PKI (a CA, another CA
// with the same name, client certificates valid, expired, not yet valid,
// revoked, without a CN, with an RFC 2253-hostile subject, and a CRL), a
// PostgreSQL with TLS on that CA and CRL to ask, and an HTTPS request to the
// gateway with a client certificate.
import assert from "node:assert/strict";
import { chmodSync, chownSync, copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { makeCa, type Ca, type Issued } from "./certs.ts";
import { nodeSettings, startNodeGateway } from "./gateway.ts";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "./postgres.ts";
import { unprivilegedUser } from "./process.ts";

/** What a connection attempt came to: rows as the user, PostgreSQL's refusal, or a TLS handshake the server ended. */
export type Decision = "ok" | "tls refused" | `${string} ${string}`;

export interface Client {
  readonly cert?: Issued;
  /** The address the request comes from (127.0.0.1 unless said). */
  readonly from?: string;
}

/** Ask the real server: a connection over TLS with the client's certificate, as `user`. */
export async function askPostgres(cluster: Cluster, ca: Issued, client: Client, user: string, password?: string): Promise<Decision> {
  const sql = postgres({
    host: "127.0.0.1",
    port: cluster.port,
    user,
    database: "postgres",
    ...(password === undefined ? {} : { pass: password }),
    ssl: { ca: ca.cert, ...(client.cert ? { cert: client.cert.cert, key: client.cert.key } : {}), rejectUnauthorized: true },
    max: 1,
    connect_timeout: 10,
    onnotice: () => {},
  });
  try {
    const [row] = await sql<[{ u: string }]>`select current_user as u`;
    assert.equal(row.u, user);
    return "ok";
  } catch (err) {
    const e = err as { code?: string; message: string; severity?: string };
    // A SQLSTATE and PostgreSQL's message; anything else is the TLS handshake ending (an alert, a reset).
    if (e.code && /^[0-9A-Z]{5}$/.test(e.code) && e.severity) return `${e.code} ${e.message}`;
    return "tls refused";
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** POST a query to the gateway over HTTPS, on a fresh connection with the client's certificate. */
export function postTls(
  url: string,
  ca: Issued,
  client: Client,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${url}/v1/postgres/sql`,
      {
        method: "POST",
        agent: false,
        ca: ca.cert,
        ...(client.from ? { localAddress: client.from } : {}),
        ...(client.cert ? { cert: client.cert.cert, key: client.cert.key } : {}),
        headers: { "content-type": "application/json", ...headers },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ query: "select current_user as u" }));
  });
}

/** The gateway's answer as a Decision: PostgreSQL's refusal of a certificate at the handshake reads as 08P01 here. */
export function gatewayDecision(r: { status: number; body: Record<string, any> }, user: string | undefined): Decision {
  if (r.status === 200) {
    // (undefined: an upstream with one role for all, the embedded PGlite.)
    if (user !== undefined) assert.deepEqual(r.body.rows, [{ u: user }]);
    return "ok";
  }
  const { code, message } = r.body.error ?? {};
  if (code === "08P01" && message === "could not accept SSL connection: certificate verify failed") return "tls refused";
  return `${code} ${message}`;
}

export interface Pki {
  readonly dir: string;
  readonly ca: Ca;
  readonly server: Issued;
  readonly alice: Issued;
  readonly bob: Issued;
  /** CN=alice@example.com, for maps. */
  readonly aliceMail: Issued;
  /** A subject with RFC 2253 specials: O=Acme, Inc., OU=ops+CN=x (multi-valued), CN=svc. */
  readonly dn: Issued;
  readonly expired: Issued;
  readonly notYetValid: Issued;
  readonly revoked: Issued;
  /** CN=alice from a CA with the same name as ours and another key. */
  readonly foreign: Issued;
  /** No CN at all. */
  readonly noCn: Issued;
  readonly crlFile: string;
}

/** The subject DN of `dn`, as OpenSSL prints it in RFC 2253 form (checked against the server in the tests). */
export const DN = String.raw`CN=svc,OU=ops+CN=x,O=Acme\, Inc.,DC=example,DC=com`;

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "hbagate-cert-"));
  const ca = makeCa(dir, "ca", { cn: "hbagate test CA" });
  const other = makeCa(dir, "other", { cn: "hbagate test CA" });
  const day = 86_400_000;
  const pki = {
    dir,
    ca,
    server: ca.issue("server", { cn: "localhost", serverFor: ["IP:127.0.0.1", "DNS:localhost"] }),
    alice: ca.issue("alice", { cn: "alice" }),
    bob: ca.issue("bob", { cn: "bob" }),
    aliceMail: ca.issue("alice-mail", { cn: "alice@example.com" }),
    dn: ca.issue("dn", { cn: "svc", subj: "/DC=com/DC=example/O=Acme\\, Inc./OU=ops+CN=x/CN=svc" }),
    expired: ca.issue("expired", { cn: "alice", notBefore: new Date(Date.now() - 5 * day), notAfter: new Date(Date.now() - day) }),
    notYetValid: ca.issue("future", { cn: "alice", notBefore: new Date(Date.now() + day), notAfter: new Date(Date.now() + 3 * day) }),
    revoked: ca.issue("revoked", { cn: "alice" }),
    foreign: other.issue("foreign", { cn: "alice" }),
    noCn: ca.issue("nocn", { cn: "", subj: "/O=No Name Ltd" }),
  };
  ca.revoke(pki.revoked);
  return { ...pki, crlFile: ca.crl().crlFile };
}

/** The server's TLS with our CA and CRL: its key readable by the server alone. */
export async function sslCluster(pki: Pki): Promise<Cluster> {
  const cluster = await startCluster();
  const as = unprivilegedUser(["postgres", "nobody"], "PostgreSQL");
  const place = (from: string, name: string, mode: number) => {
    const to = join(cluster.dir, name);
    copyFileSync(from, to);
    if (as) chownSync(to, as.uid, as.gid);
    chmodSync(to, mode);
    return to;
  };
  const files = {
    ssl_cert_file: place(pki.server.certFile, "server.crt", 0o644),
    ssl_key_file: place(pki.server.keyFile, "server.key", 0o600),
    ssl_ca_file: place(pki.ca.certFile, "ca.crt", 0o644),
    ssl_crl_file: place(pki.crlFile, "ca.crl", 0o644),
  };
  for (const [name, path] of Object.entries(files)) await cluster.sql.unsafe(`alter system set ${name} = '${path}'`);
  await cluster.sql.unsafe("alter system set ssl = on");
  await cluster.reload();
  return cluster;
}

/** Envoy's X-Forwarded-Client-Cert for a client certificate (set_current_client_cert_details: cert). */
export const xfcc = (cert: Issued) => `By=spiffe://gateway;Hash=0123;Cert="${encodeURIComponent(cert.cert)}";Subject="CN=whatever"`;

/** A gateway's settings for HTTPS with `pki`'s server certificate, client certificates verified against its CA and CRL, and `header` believed from `proxy`. */
export function clientCertSettings(pki: Pki, proxy: string, header = "X-Forwarded-Client-Cert"): Record<string, string> {
  return {
    HBAGATE_TLS_CERT_FILE: pki.server.certFile,
    HBAGATE_TLS_KEY_FILE: pki.server.keyFile,
    HBAGATE_TLS_CLIENT_CA_FILE: pki.ca.certFile,
    HBAGATE_TLS_CLIENT_CRL_FILE: pki.crlFile,
    HBAGATE_TRUSTED_PROXIES: proxy,
    HBAGATE_CLIENT_CERT_HEADER: header,
  };
}

/**
 * The Node gateway in front of 127.0.0.1:`upstreamPort` with `pki`'s TLS and client-certificate
 * settings (`header` believed from `proxy`), its rules — and an ident map and role credentials,
 * when given — written in `pki.dir`.
 */
export async function startCertGateway(
  pki: Pki,
  files: { readonly hba: string; readonly ident?: string; readonly roles?: Readonly<Record<string, string>> },
  upstreamPort: number,
  options: { readonly proxy: string; readonly header?: string; readonly logs?: LogEvent[] },
): Promise<RunningGateway> {
  const path = (name: string) => join(pki.dir, name);
  writeFileSync(path("pg_hba.conf"), files.hba);
  if (files.ident !== undefined) writeFileSync(path("pg_ident.conf"), files.ident);
  if (files.roles !== undefined) writeFileSync(path("roles.json"), JSON.stringify(files.roles));
  const env = {
    HBAGATE_HBA_FILE: path("pg_hba.conf"),
    ...(files.ident === undefined ? {} : { HBAGATE_IDENT_FILE: path("pg_ident.conf") }),
    ...(files.roles === undefined ? {} : { HBAGATE_ROLE_CREDENTIALS_FILE: path("roles.json") }),
    ...clientCertSettings(pki, options.proxy, options.header),
  };
  return startNodeGateway(nodeSettings(env, upstreamPort), options.logs);
}
