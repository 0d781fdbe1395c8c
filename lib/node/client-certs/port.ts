// The gateway's client certificate port on Node (the server and Lambda): the
// CA and CRL in force, a trusted proxy's header read and verified against
// them, and their reload.
import type { PeerCertificate } from "../../connection/caller.ts";
import { NO_CLIENT_CERTIFICATES, type ClientCertificates } from "../../gateway/platform.ts";
import { certificateFromHeader } from "./forwarded-header.ts";
import type { ClientTrustHolder } from "./holder.ts";
import { verifiedCertificate } from "./verify.ts";

export interface ClientCertificateOptions {
  /** The CA and CRL, when HBAGATE_TLS_CLIENT_CA_FILE is set. */
  readonly trust: ClientTrustHolder | undefined;
  /** HBAGATE_CLIENT_CERT_HEADER. */
  readonly header: string | undefined;
  /** The platform itself hands over verified certificates (API Gateway's mutual TLS), with or without a CA here. */
  readonly platformVerifies?: boolean;
}

/** A header value's certificate, verified; a value that is not one is refused with why. */
export function verifyForwarded(header: string, value: string, trust: ClientTrustHolder): PeerCertificate {
  try {
    return verifiedCertificate(certificateFromHeader(header, value), trust.current);
  } catch (err) {
    return { verified: false, reason: `the ${header} header does not hold a certificate: ${(err as Error).message}` };
  }
}

export function clientCertificatesPort(options: ClientCertificateOptions): ClientCertificates {
  const { trust, header } = options;
  if (!trust) return { ...NO_CLIENT_CERTIFICATES, available: options.platformVerifies ?? false };
  return {
    available: true,
    forwarded: header === undefined ? undefined : { header, verify: (value) => verifyForwarded(header, value, trust) },
    reload: () => trust.reload(),
  };
}
