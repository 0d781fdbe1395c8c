// Throwaway certificates for tests, made with the openssl command line (the
// suites that use them skip without openssl, see flavorMissing and
// slapdMissing): a self-signed certificate, or a CA that issues server and
// client certificates. Keys are EC P-256 (quick to make); every file is written
// in a directory the caller owns and removes, keys 0600, certificates 0644.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate, PEM. */
  readonly cert: string;
  /** Its private key, PEM. */
  readonly key: string;
}

export interface Ca extends Issued {
  /** A certificate signed by this CA, written as `<name>.crt` and `<name>.key` in the CA's directory. */
  issue(name: string, subject: Subject & Usage & Validity): Issued;
  /** Mark a certificate this CA issued as revoked (it is in the next crl()). */
  revoke(cert: Issued): void;
  /** A CRL of this CA (PEM, `<name>.crl.pem`), listing every certificate revoked so far. */
  crl(validity?: { readonly days?: number; readonly hours?: number }): { readonly crlFile: string; readonly crl: string };
}

export interface Validity {
  /** When it becomes valid and stops being (default: now, and two days on). */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

export interface Subject {
  readonly cn: string;
  /** An organization (O=) before the CN. */
  readonly o?: string;
  /** The whole subject as `openssl req -subj` takes it (`/DC=com/O=Acme\, Inc./CN=x`, `+` for multi-valued RDNs), instead of o and cn. */
  readonly subj?: string;
}

export interface Usage {
  /** A server certificate for these names (subjectAltName entries such as "IP:127.0.0.1", "DNS:localhost"); without it, a plain (client) certificate. */
  readonly serverFor?: readonly string[];
}

const DAYS = "2";
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(args: readonly string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** `/O=…/CN=…` with the characters -subj treats specially (`/` and `\`) escaped. */
function subj(s: Subject): string {
  if (s.subj !== undefined) return s.subj;
  const esc = (v: string) => v.replace(/[/\\]/g, "\\$&");
  return `${s.o === undefined ? "" : `/O=${esc(s.o)}`}/CN=${esc(s.cn)}`;
}

function written(certFile: string, keyFile: string): Issued {
  chmodSync(keyFile, 0o600);
  chmodSync(certFile, 0o644);
  return { certFile, keyFile, cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
}

/**
 * A self-signed certificate for `subject` (`<name>.crt`, `<name>.key` in `dir`), with the
 * extensions `openssl req -x509` gives by default and no subjectAltName: trusted as itself,
 * valid for the CN only (tests rely on 127.0.0.1 not matching a CN=localhost certificate).
 */
export function selfSigned(dir: string, name: string, subject: Subject): Issued {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  openssl(["req", "-x509", ...EC_KEY, "-days", DAYS, "-subj", subj(subject), "-keyout", keyFile, "-out", certFile]);
  return written(certFile, keyFile);
}

/** A self-signed certificate's PEM texts alone, its files made in a scratch directory and removed. */
export function selfSignedPem(subject: Subject): { readonly cert: string; readonly key: string } {
  const dir = mkdtempSync(join(tmpdir(), "hbagate-cert-"));
  try {
    const { cert, key } = selfSigned(dir, "cert", subject);
    return { cert, key };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A throwaway CA (`<name>.crt`, `<name>.key` in `dir`) that issues certificates into the same directory. */
export function makeCa(dir: string, name: string, subject: Subject): Ca {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  openssl([
    "req", "-x509", "-new", ...EC_KEY, "-days", DAYS, "-subj", subj(subject), "-keyout", keyFile, "-out", certFile,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const ca = written(certFile, keyFile);
  // `openssl ca`'s database: for certificates with chosen dates, revocations and CRLs.
  const db = (ext: string) => join(dir, `${name}.${ext}`);
  writeFileSync(db("index"), "");
  writeFileSync(db("crlnumber"), "01\n");
  const config = db("cnf");
  writeFileSync(
    config,
    [
      "[ca]", "default_ca = this",
      "[this]", `database = ${db("index")}`, `new_certs_dir = ${dir}`, `certificate = ${certFile}`, `private_key = ${keyFile}`,
      `crlnumber = ${db("crlnumber")}`, `serial = ${db("serial")}`, "default_md = sha256", "policy = any", "unique_subject = no", "email_in_dn = no",
      // Every field kept, in the order the request had it.
      "preserve = yes",
      "[any]", "commonName = supplied", "organizationName = optional", "organizationalUnitName = optional", "domainComponent = optional",
    ].join("\n") + "\n",
  );
  const stamp = (d: Date) => d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
  return {
    ...ca,
    revoke(cert) {
      openssl(["ca", "-config", config, "-revoke", cert.certFile]);
    },
    crl(validity = {}) {
      const crlFile = db("crl.pem");
      const period = validity.hours !== undefined ? ["-crlhours", String(validity.hours)] : ["-crldays", String(validity.days ?? 2)];
      openssl(["ca", "-config", config, "-gencrl", ...period, "-out", crlFile]);
      return { crlFile, crl: readFileSync(crlFile, "utf8") };
    },
    issue(leaf, s) {
      const crt = join(dir, `${leaf}.crt`);
      const key = join(dir, `${leaf}.key`);
      const csr = join(dir, `${leaf}.csr`);
      const ext = join(dir, `${leaf}.ext`);
      openssl(["req", "-new", ...EC_KEY, "-subj", subj(s), "-keyout", key, "-out", csr]);
      writeFileSync(
        ext,
        (s.serverFor
          ? [
              "basicConstraints=critical,CA:FALSE",
              "keyUsage=critical,digitalSignature,keyEncipherment",
              "extendedKeyUsage=serverAuth",
              `subjectAltName=${s.serverFor.join(",")}`,
            ]
          : ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"]
        ).join("\n") + "\n",
      );
      if (s.notBefore !== undefined || s.notAfter !== undefined) {
        const notBefore = s.notBefore ?? new Date();
        const notAfter = s.notAfter ?? new Date(notBefore.getTime() + 2 * 86_400_000);
        writeFileSync(db("serial"), `${randomBytes(8).toString("hex")}\n`);
        openssl([
          "ca", "-config", config, "-batch", "-notext", "-in", csr, "-out", crt, "-extfile", ext,
          "-startdate", stamp(notBefore), "-enddate", stamp(notAfter), "-cert", certFile, "-keyfile", keyFile, "-md", "sha256",
        ]);
        // The serial file is the database's: a fresh one each time, so two certificates never share one.
        rmSync(db("serial"), { force: true });
        rmSync(db("serial.old"), { force: true });
        return written(crt, key);
      }
      openssl([
        "x509", "-req", "-in", csr, "-CA", certFile, "-CAkey", keyFile, "-set_serial", `0x${randomBytes(8).toString("hex")}`,
        "-days", DAYS, "-extfile", ext, "-out", crt,
      ]);
      return written(crt, key);
    },
  };
}
