// The client certificate of a TLS connection to a Node listener, as OpenSSL
// verified it during the handshake (the listener asks for one but lets a
// caller without one in: other lines may not need it). Read once per
// connection — renegotiation is off, so it cannot change — and then judged on
// every request: its expiry, so a keep-alive connection does not outlive it,
// and, after a reload has changed the CA or CRL, the new trust (a revoked
// certificate stops working on the connections it already holds too).
import type { TLSSocket } from "node:tls";
import type { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "../../connection/caller.ts";
import { namedCertificate } from "./names.ts";
import type { ClientTrust } from "./trust.ts";
import { verifiedCertificate } from "./verify.ts";

interface Seen {
  readonly cert: X509Certificate;
  certificate: PeerCertificate;
  readonly notAfter: number;
  /** The trust the verdict was reached under. */
  trust: ClientTrust | undefined;
}

const seen = new WeakMap<TLSSocket, Seen>();
/** Each connection's listener's trust in force (absent: the handshake's verdict stands). */
const trustOf = new WeakMap<TLSSocket, () => ClientTrust | undefined>();

/** The listener that accepted `socket` says where its trust in force is (it changes on reload). */
export function judgeAgainst(socket: TLSSocket, current: () => ClientTrust | undefined): void {
  trustOf.set(socket, current);
}

export function tlsPeerCertificate(socket: TLSSocket, now: number = Date.now()): PeerCertificate | undefined {
  let entry = seen.get(socket);
  if (!entry) {
    const cert = socket.getPeerX509Certificate();
    if (!cert) return undefined;
    entry = {
      cert,
      certificate: socket.authorized ? namedCertificate(cert) : { verified: false, reason: String(socket.authorizationError ?? "UNABLE_TO_VERIFY_LEAF_SIGNATURE") },
      notAfter: Date.parse(cert.validTo),
      trust: trustOf.get(socket)?.(),
    };
    seen.set(socket, entry);
  }
  // The trust changed since this connection's verdict (a reload): judged again, once per change.
  const trust = trustOf.get(socket)?.();
  if (trust !== undefined && trust !== entry.trust) {
    entry.trust = trust;
    if (entry.certificate.verified) entry.certificate = verifiedCertificate(entry.cert, trust, now);
  }
  if (entry.certificate.verified && now > entry.notAfter) return { verified: false, reason: "CERT_HAS_EXPIRED" };
  return entry.certificate;
}
