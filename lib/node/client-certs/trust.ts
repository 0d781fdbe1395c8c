// What client certificates are checked against: HBAGATE_TLS_CLIENT_CA_FILE
// (PostgreSQL's ssl_ca_file) and HBAGATE_TLS_CLIENT_CRL_FILE (ssl_crl_file),
// read and checked whole at start and on every reload. A file that cannot be
// read or holds nothing usable is an error naming the file and the entry, and
// a reload that meets one keeps the trust in force.
import { X509Certificate } from "node:crypto";
import { createSecureContext } from "node:tls";
import { parseCrl, signedBy, type Crl } from "./crl.ts";

export interface ClientTrust {
  /** For the TLS listener (node:tls `ca` and `crl`). */
  readonly tls: { readonly ca: string; readonly crl?: string };
  /** Every certificate of the CA file: trust anchors and the intermediates between them and clients. */
  readonly authorities: readonly X509Certificate[];
  /** Each CRL of the CRL file, with the authority that signed it. */
  readonly crls: readonly { readonly crl: Crl; readonly issuer: X509Certificate }[];
  /** Whether a CRL file is configured: then every certificate below a root needs its issuer's CRL (OpenSSL's CRL_CHECK_ALL). */
  readonly checksRevocation: boolean;
}

export interface TrustFiles {
  readonly caFile: string;
  readonly crlFile: string | undefined;
}

const PEM = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

function pemBlocks(text: string, label: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(PEM)) if (m[1] === label) out.push(Buffer.from(m[2]!.replace(/\s+/g, ""), "base64"));
  return out;
}

function readText(setting: string, path: string, readFile: (path: string) => string): string {
  try {
    return readFile(path);
  } catch (err) {
    throw new Error(`${setting}=${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/** The CA and CRL files, parsed and cross-checked; throws an Error naming the setting, the file and the entry. */
export function loadClientTrust(files: TrustFiles, readFile: (path: string) => string): ClientTrust {
  const caSetting = "HBAGATE_TLS_CLIENT_CA_FILE";
  const caText = readText(caSetting, files.caFile, readFile);
  const authorities = pemBlocks(caText, "CERTIFICATE").map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (err) {
      throw new Error(`${caSetting}=${JSON.stringify(files.caFile)}: certificate #${i + 1} is not a valid certificate (${(err as Error).message})`);
    }
  });
  if (authorities.length === 0) throw new Error(`${caSetting}=${JSON.stringify(files.caFile)}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file`);
  for (const [i, a] of authorities.entries()) {
    if (!a.ca) throw new Error(`${caSetting}=${JSON.stringify(files.caFile)}: certificate #${i + 1} (${a.subject.replace(/\n/g, ", ")}) is not a CA certificate (basicConstraints CA:TRUE)`);
  }

  const crls: { crl: Crl; issuer: X509Certificate }[] = [];
  let crlText: string | undefined;
  if (files.crlFile !== undefined) {
    const crlSetting = "HBAGATE_TLS_CLIENT_CRL_FILE";
    const where = `${crlSetting}=${JSON.stringify(files.crlFile)}`;
    crlText = readText(crlSetting, files.crlFile, readFile);
    const blocks = pemBlocks(crlText, "X509 CRL");
    if (blocks.length === 0) throw new Error(`${where}: no PEM CRL (-----BEGIN X509 CRL-----) in the file`);
    for (const [i, der] of blocks.entries()) {
      let crl: Crl;
      try {
        crl = parseCrl(der);
      } catch (err) {
        throw new Error(`${where}: CRL #${i + 1} is not a valid CRL (${(err as Error).message})`);
      }
      // A CRL no configured authority signed could revoke nothing here: a wrong file, said at once.
      const issuer = authorities.find((a) => signedBy(crl, a.publicKey));
      if (!issuer) throw new Error(`${where}: CRL #${i + 1} is not signed by any certificate in ${caSetting}`);
      crls.push({ crl, issuer });
    }
  }
  const tls = { ca: caText, ...(crlText === undefined ? {} : { crl: crlText }) };
  try {
    // OpenSSL must take both as well: the listener is built from exactly these texts.
    createSecureContext(tls);
  } catch (err) {
    throw new Error(`${caSetting}=${JSON.stringify(files.caFile)}${files.crlFile === undefined ? "" : `, HBAGATE_TLS_CLIENT_CRL_FILE=${JSON.stringify(files.crlFile)}`}: OpenSSL refused them (${(err as Error).message})`);
  }
  return Object.freeze({ tls, authorities, crls, checksRevocation: files.crlFile !== undefined });
}
