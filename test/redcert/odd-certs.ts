// Red team: certificates the harness's PKI does not make, from the same CA —
// a CN in a BMPString, a CN with an embedded NUL (re-signed DER), an
// attribute whose OID OpenSSL has no name for, a key usage without
// digitalSignature — each a legal X.509 certificate a CA may sign.
import { execFileSync } from "node:child_process";
import { randomBytes, sign } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Ca, Issued } from "../harness/certs.ts";

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const CLIENT_EXT = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"];

function openssl(args: readonly string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * A certificate from `ca` whose request is made with `reqConfig` (an openssl req
 * config: its [dn] section and string_mask decide the subject's encoding) and
 * signed with the extensions `ext` (default: a plain client certificate).
 */
export function issueFromConfig(dir: string, ca: Ca, name: string, reqConfig: string, ext: readonly string[] = CLIENT_EXT): Issued {
  const cnf = join(dir, `${name}.req.cnf`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  const crt = join(dir, `${name}.crt`);
  writeFileSync(cnf, reqConfig);
  writeFileSync(extFile, ext.join("\n") + "\n");
  openssl(["req", "-new", ...EC_KEY, "-config", cnf, "-keyout", key, "-out", csr]);
  openssl(["x509", "-req", "-in", csr, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", "2", "-extfile", extFile, "-out", crt]);
  chmodSync(key, 0o600);
  return { certFile: crt, keyFile: key, cert: readFileSync(crt, "utf8"), key: readFileSync(key, "utf8") };
}

/** A subject of one CN encoded as a BMPString (UTF-16BE), as some Windows CAs still issue. */
export const bmpConfig = (cn: string) => `[req]\nstring_mask = MASK:0x800\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ${cn}\n`;

/** A subject with an attribute of OID 1.2.3.4.5 (unknown to OpenSSL outside this config) before the CN. */
export const unknownOidConfig = (value: string, cn: string) =>
  `oid_section = new_oids\n[new_oids]\nmyattr = 1.2.3.4.5\n[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nmyattr = ${value}\nCN = ${cn}\n`;

export const plainConfig = (cn: string) => `[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ${cn}\n`;

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

function readTlv(buf: Buffer, pos: number): { start: number; content: number; end: number } {
  let at = pos + 1;
  let len = buf[at++]!;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + buf[at++]!;
  }
  return { start: pos, content: at, end: at + len };
}

/**
 * `issued` with its to-be-signed bytes changed by `patch` (same length) and
 * signed again by `ca` (ECDSA P-256 with SHA-256, the harness CA's key): a
 * certificate the CA really signed, with bytes openssl -subj cannot write.
 */
export function resigned(dir: string, ca: Ca, issued: Issued, name: string, patch: (tbs: Buffer) => Buffer): Issued {
  const der = Buffer.from(issued.cert.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
  const outer = readTlv(der, 0);
  const tbsT = readTlv(der, outer.content);
  const algT = readTlv(der, tbsT.end);
  const tbs = patch(Buffer.from(der.subarray(tbsT.start, tbsT.end)));
  const alg = der.subarray(algT.start, algT.end);
  const signature = sign("sha256", tbs, ca.key);
  const cert = tlv(0x30, Buffer.concat([tbs, alg, tlv(0x03, Buffer.concat([Buffer.from([0]), signature]))]));
  const pem = `-----BEGIN CERTIFICATE-----\n${cert.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n?$/, "\n")}-----END CERTIFICATE-----\n`;
  const certFile = join(dir, `${name}.crt`);
  writeFileSync(certFile, pem);
  return { certFile, keyFile: issued.keyFile, cert: pem, key: issued.key };
}

/** Replace the first occurrence of `from` (ASCII) with `to` (same length) in `tbs`. */
export function replaceBytes(from: string, to: Buffer): (tbs: Buffer) => Buffer {
  return (tbs) => {
    const at = tbs.indexOf(Buffer.from(from, "latin1"));
    if (at < 0 || to.length !== from.length) throw new Error(`"${from}" not in the certificate`);
    const out = Buffer.from(tbs);
    to.copy(out, at);
    return out;
  };
}

/**
 * askPostgres with node-postgres: one attempt, no reconnects (postgres.js keeps
 * reconnecting when the server closes a finished TLS handshake, as PostgreSQL
 * does for a CN with an embedded NUL).
 */
export async function askOnce(port: number, caCert: string, cert: Issued | undefined, user: string, password?: string): Promise<string> {
  const { default: pg } = await import("pg");
  const client = new pg.Client({
    host: "127.0.0.1",
    port,
    user,
    database: "postgres",
    ...(password === undefined ? {} : { password }),
    ssl: { ca: caCert, ...(cert ? { cert: cert.cert, key: cert.key } : {}), rejectUnauthorized: true },
    connectionTimeoutMillis: 10_000,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    const { rows } = await client.query("select current_user as u");
    return rows[0].u === user ? "ok" : `as ${rows[0].u}`;
  } catch (err) {
    const e = err as { code?: string; message: string; severity?: string };
    if (e.code && /^[0-9A-Z]{5}$/.test(e.code) && e.severity) return `${e.code} ${e.message}`;
    return "tls refused";
  } finally {
    await client.end().catch(() => {});
  }
}
