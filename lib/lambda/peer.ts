// Who is calling, as AWS Lambda's front doors say it: function URLs and API
// Gateway HTTP APIs (payload v2) and REST APIs (v1). They only speak HTTPS, so
// every request is encrypted. A request the platform authenticated with IAM
// (AWS_IAM auth) is a `local` connection whose system user, for `peer`, is the
// IAM principal's whole ARN. Not a name taken from it: the session name of an
// assumed role is chosen by whoever calls AssumeRole, in any account, so
// "admin" would be anyone's to claim; the account and role are what IAM
// proved. Admitting a principal is a pg_ident.conf line (a regex over ARNs).
import type { PeerInfo } from "../connection/caller.ts";

interface RequestContextV2 {
  readonly http?: { readonly sourceIp?: string };
  readonly authorizer?: { readonly iam?: { readonly userArn?: string } | null } | null;
}
interface RequestContextV1 {
  readonly identity?: { readonly sourceIp?: string; readonly userArn?: string | null; readonly accessKey?: string | null };
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

export function lambdaPeer(requestContext: unknown): PeerInfo {
  const v2 = requestContext as RequestContextV2 | undefined;
  const v1 = requestContext as RequestContextV1 | undefined;
  const iamArn = v2?.authorizer?.iam?.userArn ?? (v1?.identity?.accessKey ? v1.identity.userArn : undefined);
  if (iamArn) {
    const systemUser = iamPrincipal(iamArn);
    return { transport: "local", encrypted: true, ...(systemUser ? { systemUser } : {}) };
  }
  const address = v2?.http?.sourceIp ?? v1?.identity?.sourceIp;
  return { transport: "host", ...(address ? { address } : {}), encrypted: true };
}
