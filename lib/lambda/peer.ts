// Who is calling, as AWS Lambda's front doors say it: function URLs and API
// Gateway HTTP APIs (payload v2) and REST APIs (v1). They only speak HTTPS, so
// every request is encrypted. A request the platform authenticated with IAM
// (AWS_IAM auth) is a `local` connection whose system user, for `peer`, is the
// IAM principal's name: the role session name for an assumed role, the user
// name for an IAM user.
import type { PeerInfo } from "../connection/caller.ts";

interface RequestContextV2 {
  readonly http?: { readonly sourceIp?: string };
  readonly authorizer?: { readonly iam?: { readonly userArn?: string } | null } | null;
}
interface RequestContextV1 {
  readonly identity?: { readonly sourceIp?: string; readonly userArn?: string | null; readonly accessKey?: string | null };
}

/** arn:aws:sts::123:assumed-role/Role/Session -> Session; arn:aws:iam::123:user/path/Name -> Name; arn:aws:iam::123:root -> root. */
export function iamPrincipalName(arn: string): string | undefined {
  const resource = arn.split(":").slice(5).join(":");
  if (resource === "") return undefined;
  if (resource.startsWith("assumed-role/")) return resource.split("/")[2] || undefined;
  return resource.split("/").pop() || undefined;
}

export function lambdaPeer(requestContext: unknown): PeerInfo {
  const v2 = requestContext as RequestContextV2 | undefined;
  const v1 = requestContext as RequestContextV1 | undefined;
  const iamArn = v2?.authorizer?.iam?.userArn ?? (v1?.identity?.accessKey ? v1.identity.userArn : undefined);
  if (iamArn) {
    const systemUser = iamPrincipalName(iamArn);
    return { transport: "local", encrypted: true, ...(systemUser ? { systemUser } : {}) };
  }
  const address = v2?.http?.sourceIp ?? v1?.identity?.sourceIp;
  return { transport: "host", ...(address ? { address } : {}), encrypted: true };
}
