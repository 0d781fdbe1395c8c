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
  issue(name: string, subject: Subject & Usage): Issued;
}

export interface Subject {
  readonly cn: string;
  /** An organization (O=) before the CN. */
  readonly o?: string;
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
  return {
    ...ca,
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
      openssl([
        "x509", "-req", "-in", csr, "-CA", certFile, "-CAkey", keyFile, "-set_serial", `0x${randomBytes(8).toString("hex")}`,
        "-days", DAYS, "-extfile", ext, "-out", crt,
      ]);
      return written(crt, key);
    },
  };
}
