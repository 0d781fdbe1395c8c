// A client certificate checked against the configured trust the way OpenSSL
// checks the TLS listener's (X509_verify_cert as PostgreSQL and Node use it,
// reasons named by the same codes): a chain through the CA file's
// certificates to a self-signed one among them, every certificate in its
// validity period, issuers that are CAs, a leaf allowed for client
// authentication, and — with a CRL file — none revoked, each issuer's CRL
// present and current. For certificates that arrive without a handshake of
// ours: a trusted proxy's header, API Gateway's mutual TLS.
import type { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "../../connection/caller.ts";
import { normalizeSerial } from "./der.ts";
import { namedCertificate } from "./names.ts";
import { clientPurposeError } from "./certificate-der.ts";
import type { ClientTrust } from "./trust.ts";

/** id-kp-clientAuth, and anyExtendedKeyUsage. */
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const ANY_USAGE = "2.5.29.37.0";
const MAX_DEPTH = 10;

const selfSigned = (c: X509Certificate) => c.checkIssued(c) && c.verify(c.publicKey);

function inPeriod(c: X509Certificate, now: number): string | undefined {
  if (now < Date.parse(c.validFrom)) return "CERT_NOT_YET_VALID";
  if (now > Date.parse(c.validTo)) return "CERT_HAS_EXPIRED";
  return undefined;
}

function revocation(c: X509Certificate, issuer: X509Certificate, trust: ClientTrust, now: number): string | undefined {
  const theirs = trust.crls.filter((e) => e.issuer === issuer || e.issuer.fingerprint256 === issuer.fingerprint256);
  if (theirs.length === 0) return "UNABLE_TO_GET_CRL";
  // The most recent of the issuer's CRLs decides, as OpenSSL picks the newest valid one.
  const { crl } = theirs.reduce((a, b) => (b.crl.thisUpdate > a.crl.thisUpdate ? b : a));
  if (now < crl.thisUpdate) return "CRL_NOT_YET_VALID";
  if (crl.nextUpdate !== undefined && now > crl.nextUpdate) return "CRL_HAS_EXPIRED";
  if (crl.revoked.has(normalizeSerial(c.serialNumber))) return "CERT_REVOKED";
  return undefined;
}

/** Why `leaf` does not verify against `trust` at `now`, or undefined when it does. */
export function verificationError(leaf: X509Certificate, trust: ClientTrust, now: number = Date.now()): string | undefined {
  // extendedKeyUsage, when present, must allow client authentication (X509_PURPOSE_SSL_CLIENT).
  const usage = leaf.keyUsage;
  if (usage !== undefined && usage.length > 0 && !usage.includes(CLIENT_AUTH) && !usage.includes(ANY_USAGE)) return "INVALID_PURPOSE";
  // keyUsage and nsCertType, when present, must allow it too (the CA's own certificate does not).
  const purpose = clientPurposeError(leaf);
  if (purpose) return purpose;
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const expired = inPeriod(current, now);
    if (expired) return expired;
    // A certificate of the CA file that is itself self-signed ends the chain: a trust anchor.
    if (trust.authorities.some((a) => a.fingerprint256 === current.fingerprint256) && selfSigned(current)) return undefined;
    const issuer = trust.authorities.find((a) => current.checkIssued(a) && current.verify(a.publicKey));
    if (!issuer) return depth === 0 ? "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" : "UNABLE_TO_GET_ISSUER_CERT";
    if (!issuer.ca) return "INVALID_CA";
    if (trust.checksRevocation) {
      const revoked = revocation(current, issuer, trust, now);
      if (revoked) return revoked;
    }
    current = issuer;
  }
  return "CERT_CHAIN_TOO_LONG";
}

/** The certificate as hba sees it: verified with its names, or refused with OpenSSL's code for why. */
export function verifiedCertificate(cert: X509Certificate, trust: ClientTrust, now: number = Date.now()): PeerCertificate {
  const error = verificationError(cert, trust, now);
  return error === undefined ? namedCertificate(cert) : { verified: false, reason: error };
}
