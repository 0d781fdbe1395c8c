// Certificate revocation lists (RFC 5280 5.1), read from PEM once at load:
// who signed it (checked against the CA's key), its validity window and the
// revoked serial numbers. OpenSSL decides the same things for the TLS
// listener; this serves the certificates that arrive already unwrapped (a
// trusted proxy's header, API Gateway's mutual TLS).
import { verify, type KeyObject } from "node:crypto";
import { childrenOf, DerError, expectTag, oidOf, readTlv, serialHex, TAG, timeOf } from "./der.ts";

export interface Crl {
  /** The DER-encoded tbsCertList, what the signature covers. */
  readonly signed: Uint8Array;
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
  readonly thisUpdate: number;
  readonly nextUpdate: number | undefined;
  /** Revoked serial numbers, upper-case hex without leading zeros. */
  readonly revoked: ReadonlySet<string>;
}

/** Signature algorithms by OID, as crypto.verify names their digest (null: the key decides, Ed25519/Ed448). */
const SIGNATURE_DIGESTS: Readonly<Record<string, string | null>> = {
  "1.2.840.10045.4.3.2": "sha256", // ecdsa-with-SHA256
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.113549.1.1.11": "sha256", // sha256WithRSAEncryption
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.3.101.112": null, // Ed25519
  "1.3.101.113": null, // Ed448
};

/** One DER CRL; throws a DerError saying what is wrong. */
export function parseCrl(der: Uint8Array): Crl {
  const top = readTlv(der, 0);
  if (top.end !== der.length) throw new DerError("trailing bytes after the CRL");
  const [tbs, algorithm, signature] = childrenOf(der, expectTag(top, TAG.sequence, "a CertificateList"));
  expectTag(tbs, TAG.sequence, "tbsCertList");
  const signatureAlgorithm = oidOf(der, expectTag(childrenOf(der, expectTag(algorithm, TAG.sequence, "signatureAlgorithm"))[0], TAG.oid, "an algorithm OID"));
  if (!(signatureAlgorithm in SIGNATURE_DIGESTS)) throw new DerError(`unsupported signature algorithm ${signatureAlgorithm}`);
  const bits = expectTag(signature, TAG.bitString, "signatureValue");
  if (der[bits.contentStart] !== 0) throw new DerError("signature with unused bits");

  const fields = childrenOf(der, tbs!);
  let i = 0;
  if (fields[i]?.tag === TAG.integer) i++; // version v2
  expectTag(fields[i++], TAG.sequence, "the signature algorithm");
  expectTag(fields[i++], TAG.sequence, "the issuer");
  const thisField = fields[i++];
  if (!thisField || (thisField.tag !== TAG.utcTime && thisField.tag !== TAG.generalizedTime)) throw new DerError("expected thisUpdate");
  const thisUpdate = timeOf(der, thisField);
  let nextUpdate: number | undefined;
  const maybeNext = fields[i];
  if (maybeNext && (maybeNext.tag === TAG.utcTime || maybeNext.tag === TAG.generalizedTime)) {
    nextUpdate = timeOf(der, maybeNext);
    i++;
  }
  const revoked = new Set<string>();
  if (fields[i]?.tag === TAG.sequence) {
    for (const entry of childrenOf(der, fields[i]!)) {
      const [serial] = childrenOf(der, expectTag(entry, TAG.sequence, "a revoked certificate entry"));
      revoked.add(serialHex(der, expectTag(serial, TAG.integer, "a serial number")));
    }
    i++;
  }
  if (fields[i]?.tag === TAG.context0) i++; // crlExtensions
  if (i !== fields.length) throw new DerError("unexpected field in tbsCertList");
  return {
    signed: der.subarray(tbs!.start, tbs!.end),
    signatureAlgorithm,
    signature: der.subarray(bits.contentStart + 1, bits.end),
    thisUpdate,
    nextUpdate,
    revoked,
  };
}

/** Whether `key` (an issuer's public key) signed this CRL. */
export function signedBy(crl: Crl, key: KeyObject): boolean {
  try {
    return verify(SIGNATURE_DIGESTS[crl.signatureAlgorithm] ?? null, crl.signed, key, crl.signature);
  } catch {
    // A key of another type than the signature's.
    return false;
  }
}
