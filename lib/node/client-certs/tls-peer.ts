// The client certificate of a TLS connection to the Node listener, as
// OpenSSL verified it during the handshake (the listener asks for one but
// lets a caller without one in: other lines may not need it). Read once per
// connection — renegotiation is off, so it cannot change — and its expiry
// checked on every request, so a keep-alive connection does not outlive it.
import type { TLSSocket } from "node:tls";
import type { PeerCertificate } from "../../connection/caller.ts";
import { certificateNames } from "./names.ts";

interface Seen {
  readonly certificate: PeerCertificate;
  readonly notAfter: number;
}

const seen = new WeakMap<TLSSocket, Seen>();

export function tlsPeerCertificate(socket: TLSSocket, now: number = Date.now()): PeerCertificate | undefined {
  let entry = seen.get(socket);
  if (!entry) {
    const cert = socket.getPeerX509Certificate();
    if (!cert) return undefined;
    entry = {
      certificate: socket.authorized
        ? { verified: true, names: certificateNames(cert) }
        : { verified: false, reason: String(socket.authorizationError ?? "UNABLE_TO_VERIFY_LEAF_SIGNATURE") },
      notAfter: Date.parse(cert.validTo),
    };
    seen.set(socket, entry);
  }
  if (entry.certificate.verified && now > entry.notAfter) return { verified: false, reason: "CERT_HAS_EXPIRED" };
  return entry.certificate;
}
