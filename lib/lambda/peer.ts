// Who is calling, as AWS Lambda's front doors say it: function URLs and API
// Gateway HTTP APIs (payload v2) and REST APIs (v1). They only speak HTTPS, so
// every request is encrypted. A request the platform authenticated with IAM
// (AWS_IAM auth) is a `local` connection whose system user, for `peer`, is the
// IAM principal's whole ARN. Not a name taken from it: the session name of an
// assumed role is chosen by whoever calls AssumeRole, in any account, so
// "admin" would be anyone's to claim; the account and role are what IAM
// proved. Admitting a principal is a pg_ident.conf line (a regex over ARNs).
//
// With mutual TLS on an API Gateway custom domain, API Gateway verified the
// caller's certificate against its truststore before the function ran and
// puts it in the request context (authentication.clientCert on HTTP APIs,
// identity.clientCert on REST APIs), where no caller can write: it is the
// caller's certificate, its validity checked again per request. With
// HBAGATE_TLS_CLIENT_CA_FILE it is verified here as well (a CRL, which API
// Gateway does not check).
import { X509Certificate } from "node:crypto";
import type { PeerCertificate, PeerInfo } from "../connection/caller.ts";
import type { ClientTrustHolder } from "../node/client-certs/holder.ts";
import { namedCertificate } from "../node/client-certs/names.ts";
import { verifiedCertificate } from "../node/client-certs/verify.ts";

interface ClientCert {
  readonly clientCertPem?: string;
}
interface RequestContextV2 {
  readonly http?: { readonly sourceIp?: string };
  readonly authorizer?: { readonly iam?: { readonly userArn?: string } | null } | null;
  readonly authentication?: { readonly clientCert?: ClientCert | null } | null;
}
interface RequestContextV1 {
  readonly identity?: { readonly sourceIp?: string; readonly userArn?: string | null; readonly accessKey?: string | null; readonly clientCert?: ClientCert | null };
}

/** The certificate API Gateway's mutual TLS verified, as hba sees it; undefined without one. */
export function apiGatewayCertificate(requestContext: unknown, trust?: ClientTrustHolder, now: number = Date.now()): PeerCertificate | undefined {
  const pem = (requestContext as RequestContextV2 | undefined)?.authentication?.clientCert?.clientCertPem ?? (requestContext as RequestContextV1 | undefined)?.identity?.clientCert?.clientCertPem;
  if (typeof pem !== "string" || pem === "") return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return { verified: false, reason: "API Gateway's clientCertPem is not a certificate" };
  }
  if (trust) return verifiedCertificate(cert, trust.current, now);
  if (now < Date.parse(cert.validFrom)) return { verified: false, reason: "CERT_NOT_YET_VALID" };
  if (now > Date.parse(cert.validTo)) return { verified: false, reason: "CERT_HAS_EXPIRED" };
  return namedCertificate(cert);
}

/**
 * The ARN forms a caller authenticated by IAM arrives with: an assumed role's
 * session, an IAM user, a federated user, an account's root. Anything else is
 * no principal (and `peer` refuses it).
 */
const PRINCIPAL = /^arn:aws(?:-[a-z]+)*:(?:sts::\d{12}:(?:assumed-role\/[\w+=,.@-]+\/[\w+=,.@-]+|federated-user\/[\w+=,.@-]+)|iam::\d{12}:(?:user\/(?:[\x21-\x7e]+\/)?[\w+=,.@-]+|root))$/;

/** The principal `peer` compares: the ARN itself, when it is one of IAM's caller forms. */
export function iamPrincipal(arn: string): string | undefined {
  return PRINCIPAL.test(arn) ? arn : undefined;
}

export function lambdaPeer(requestContext: unknown, trust?: ClientTrustHolder): PeerInfo {
  const v2 = requestContext as RequestContextV2 | undefined;
  const v1 = requestContext as RequestContextV1 | undefined;
  const certificate = apiGatewayCertificate(requestContext, trust);
  const withCertificate = certificate ? { certificate } : {};
  const iamArn = v2?.authorizer?.iam?.userArn ?? (v1?.identity?.accessKey ? v1.identity.userArn : undefined);
  if (iamArn) {
    const systemUser = iamPrincipal(iamArn);
    return { transport: "local", encrypted: true, ...(systemUser ? { systemUser } : {}), ...withCertificate };
  }
  const address = v2?.http?.sourceIp ?? v1?.identity?.sourceIp;
  return { transport: "host", ...(address ? { address } : {}), encrypted: true, ...withCertificate };
}
