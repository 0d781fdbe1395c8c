// The names hba compares, from a certificate as PostgreSQL reads them
// (be-secure-openssl.c, be_tls_open_server): the CN is the subject's first
// commonName entry, unescaped; the DN is the whole subject printed by OpenSSL
// with XN_FLAG_RFC2253 (entries last to first, "," between RDNs, "+" inside
// one, RFC 2253 escapes, bytes past ASCII as \XX). Node prints the subject
// with OpenSSL's own escaping (ESC_2253, ESC_CTRL) one RDN per line, first to
// last and without ESC_MSB; this only reorders that and adds the \XX escapes,
// so no character is escaped by hand-written rules.
import type { X509Certificate } from "node:crypto";
import type { CertificateNames, PeerCertificate } from "../../connection/caller.ts";
import { subjectAttributes } from "./certificate-der.ts";

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

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join("");

/**
 * The subject DN in RFC 2253 form, as PostgreSQL's clientname=DN sees it. An
 * attribute OpenSSL has no name for (Node prints its dotted OID) is dumped as
 * `OID=#` and the hex of its DER, as XN_FLAG_DUMP_UNKNOWN_FIELDS does.
 */
export function rfc2253Subject(cert: X509Certificate): string {
  if (cert.subject === "") return "";
  const lines = cert.subject.split("\n").map(entriesOf);
  const encoded = subjectAttributes(cert);
  const aligned = encoded.length === lines.length && encoded.every((rdn, i) => rdn.length === lines[i]!.length);
  const entry = (text: string, i: number, j: number) => {
    const attribute = aligned ? encoded[i]![j]! : undefined;
    if (attribute && /^\d+(\.\d+)+=/.test(text)) return `${attribute.oid}=#${hex(attribute.der)}`;
    return escapeMsb(text);
  };
  // XN_FLAG_DN_REV reverses the entry list as a whole, multi-valued RDNs included.
  return lines
    .map((entries, i) => entries.map((text, j) => entry(text, i, j)).reverse().join("+"))
    .reverse()
    .join(",");
}

const COMMON_NAME = "2.5.4.3";
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The subject's first commonName as PostgreSQL reads it: the value's bytes as
 * encoded (X509_NAME_get_text_by_NID copies them; a BMPString "alice" is
 * 00 61 00 6c …), refused when they hold a NUL, as PostgreSQL refuses "SSL
 * certificate's common name contains embedded null" (a name that would read
 * as another up to the NUL). Undefined when the subject has no CN or its bytes
 * are no UTF-8 text (then they equal no role name).
 */
export function firstCommonName(cert: X509Certificate): { cn: string | undefined } | { refused: string } {
  for (const rdn of subjectAttributes(cert)) {
    for (const a of rdn) {
      if (a.oid !== COMMON_NAME) continue;
      if (a.bytes.includes(0)) return { refused: "the certificate's common name contains an embedded null" };
      try {
        return { cn: strictUtf8.decode(a.bytes) };
      } catch {
        return { cn: undefined };
      }
    }
  }
  return { cn: undefined };
}

/** A verified certificate as hba sees it: its names, or refused for a name PostgreSQL refuses. */
export function namedCertificate(cert: X509Certificate): PeerCertificate {
  let first: ReturnType<typeof firstCommonName>;
  try {
    first = firstCommonName(cert);
  } catch {
    return { verified: false, reason: "the certificate's subject cannot be read" };
  }
  if ("refused" in first) return { verified: false, reason: first.refused };
  return { verified: true, names: { cn: first.cn, dn: rfc2253Subject(cert) } satisfies CertificateNames };
}
