// What Node's X509Certificate does not show of a certificate, read from its
// DER: the subject's attributes as encoded (string type and raw bytes, which
// PostgreSQL compares as they are), and the keyUsage and Netscape
// certificate-type bits OpenSSL's client-purpose check reads.
import type { X509Certificate } from "node:crypto";
import { childrenOf, DerError, expectTag, oidOf, readTlv, TAG, type Tlv } from "./der.ts";

export interface SubjectAttribute {
  readonly oid: string;
  /** The value's ASN.1 tag (UTF8String 0x0c, PrintableString 0x13, BMPString 0x1e, …). */
  readonly tag: number;
  /** The value's content bytes, as encoded. */
  readonly bytes: Uint8Array;
  /** The value's whole DER element (what OpenSSL's RFC 2253 form dumps for an unknown attribute). */
  readonly der: Uint8Array;
}

const SET = 0x31;
const EXTENSIONS = 0xa3;
const OCTET_STRING = 0x04;
const BOOLEAN = 0x01;

/** tbsCertificate's fields, the optional version skipped: serial, signature, issuer, validity, subject, key, … */
function tbsFields(raw: Uint8Array): Tlv[] {
  const cert = expectTag(readTlv(raw, 0), TAG.sequence, "Certificate");
  const tbs = expectTag(childrenOf(raw, cert)[0], TAG.sequence, "tbsCertificate");
  const fields = childrenOf(raw, tbs);
  return fields[0]?.tag === TAG.context0 ? fields.slice(1) : fields;
}

/** The subject's relative distinguished names, first to last, each its attributes in order. */
export function subjectAttributes(cert: X509Certificate): SubjectAttribute[][] {
  const raw = new Uint8Array(cert.raw);
  const subject = expectTag(tbsFields(raw)[4], TAG.sequence, "subject");
  return childrenOf(raw, subject).map((rdn) => {
    if (rdn.tag !== SET) throw new DerError("expected a relative distinguished name");
    return childrenOf(raw, rdn).map((atv) => {
      const [type, value] = childrenOf(raw, expectTag(atv, TAG.sequence, "attribute"));
      if (!value) throw new DerError("attribute without a value");
      return { oid: oidOf(raw, expectTag(type, TAG.oid, "attribute type")), tag: value.tag, bytes: raw.subarray(value.contentStart, value.end), der: raw.subarray(value.start, value.end) };
    });
  });
}

/** An extension's value (the DER inside its OCTET STRING), or undefined when the certificate has none. */
function extension(cert: X509Certificate, oid: string): { raw: Uint8Array; value: Tlv } | undefined {
  const raw = new Uint8Array(cert.raw);
  const block = tbsFields(raw).find((f) => f.tag === EXTENSIONS);
  if (!block) return undefined;
  const list = expectTag(childrenOf(raw, block)[0], TAG.sequence, "extensions");
  for (const ext of childrenOf(raw, list)) {
    const parts = childrenOf(raw, expectTag(ext, TAG.sequence, "extension"));
    if (oidOf(raw, expectTag(parts[0], TAG.oid, "extension id")) !== oid) continue;
    const octets = expectTag(parts[1]?.tag === BOOLEAN ? parts[2] : parts[1], OCTET_STRING, "extension value");
    return { raw, value: readTlv(raw, octets.contentStart, octets.end) };
  }
  return undefined;
}

/** A BIT STRING extension's bits (first byte, most significant first: bit 0 is 0x80), or undefined when absent. */
function bits(cert: X509Certificate, oid: string): number | undefined {
  const ext = extension(cert, oid);
  if (!ext) return undefined;
  const { raw, value } = ext;
  if (value.tag !== TAG.bitString) throw new DerError("expected a bit string");
  // First content byte: unused bits; the flags this check reads are all in the next byte.
  return value.end - value.contentStart >= 2 ? raw[value.contentStart + 1]! : 0;
}

const KEY_USAGE = "2.5.29.15";
const NS_CERT_TYPE = "2.16.840.1.113730.1.1";
const DIGITAL_SIGNATURE = 0x80;
const KEY_AGREEMENT = 0x08;
const NS_SSL_CLIENT = 0x80;

/**
 * OpenSSL's check of a leaf for client authentication beyond extendedKeyUsage
 * (check_purpose_ssl_client): keyUsage, when present, allows digital
 * signatures or key agreement; nsCertType, when present, allows SSL clients.
 */
export function clientPurposeError(cert: X509Certificate): string | undefined {
  try {
    const ku = bits(cert, KEY_USAGE);
    if (ku !== undefined && (ku & (DIGITAL_SIGNATURE | KEY_AGREEMENT)) === 0) return "INVALID_PURPOSE";
    const ns = bits(cert, NS_CERT_TYPE);
    if (ns !== undefined && (ns & NS_SSL_CLIENT) === 0) return "INVALID_PURPOSE";
    return undefined;
  } catch {
    return "INVALID_PURPOSE";
  }
}
