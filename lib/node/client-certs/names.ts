// The names hba compares, from a certificate as PostgreSQL reads them
// (be-secure-openssl.c, be_tls_open_server): the CN is the subject's first
// commonName entry, unescaped; the DN is the whole subject printed by OpenSSL
// with XN_FLAG_RFC2253 (entries last to first, "," between RDNs, "+" inside
// one, RFC 2253 escapes, bytes past ASCII as \XX). Node prints the subject
// with OpenSSL's own escaping (ESC_2253, ESC_CTRL) one RDN per line, first to
// last and without ESC_MSB; this only reorders that and adds the \XX escapes,
// so no character is escaped by hand-written rules.
import type { X509Certificate } from "node:crypto";
import type { CertificateNames } from "../../connection/caller.ts";

/** Node's multiline subject line split at its unescaped " + " (a multi-valued RDN's entries). */
function entriesOf(line: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\\") {
      i++;
      continue;
    }
    if (line.startsWith(" + ", i)) {
      out.push(line.slice(start, i));
      start = i + 3;
      i += 2;
    }
  }
  out.push(line.slice(start));
  return out;
}

const utf8 = new TextEncoder();

/** ESC_MSB: every byte of a character past ASCII as \XX (OpenSSL escapes the UTF-8 bytes). */
function escapeMsb(text: string): string {
  return text.replace(/[^\x00-\x7f]/gu, (ch) => [...utf8.encode(ch)].map((b) => `\\${b.toString(16).toUpperCase().padStart(2, "0")}`).join(""));
}

/** The subject DN in RFC 2253 form, as PostgreSQL's clientname=DN sees it. */
export function rfc2253Subject(cert: X509Certificate): string {
  if (cert.subject === "") return "";
  // XN_FLAG_DN_REV reverses the entry list as a whole, multi-valued RDNs included.
  return cert.subject
    .split("\n")
    .reverse()
    .map((line) => entriesOf(line).reverse().map(escapeMsb).join("+"))
    .join(",");
}

/** The subject's first commonName, unescaped (X509_NAME_get_text_by_NID); undefined when it has none. */
export function firstCommonName(cert: X509Certificate): string | undefined {
  const cn = (cert.toLegacyObject().subject as unknown as Record<string, string | string[] | undefined> | undefined)?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

export function certificateNames(cert: X509Certificate): CertificateNames {
  return { cn: firstCommonName(cert), dn: rfc2253Subject(cert) };
}
