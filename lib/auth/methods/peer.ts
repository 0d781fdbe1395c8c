// `peer`: the serverless counterpart of "the operating system says who you
// are". The platform authenticated the caller (IAM) and names it (the whole
// ARN); the name must be the requested user, or map to it through `map=`.
import { gatewayError, SQLSTATE } from "../../errors.ts";
import { principalOf } from "../../connection/caller.ts";
import { identAllows } from "../../ident/ident.ts";
import type { MethodCheck } from "./verifiers.ts";

export const checkPeer: MethodCheck<{ readonly name: "peer"; readonly map: string | undefined }> = async (method, caller, _rule, verifiers) => {
  const { facts } = caller;
  const failed = gatewayError(SQLSTATE.invalidAuthorizationSpecification, `Peer authentication failed for user "${facts.user}"`);
  const principal = principalOf(caller);
  if (facts.transport !== "local" || principal === undefined) throw failed;
  if (method.map !== undefined && !verifiers.ident) throw failed;
  const allowed = verifiers.ident ? await identAllows(verifiers.ident, method.map, principal, facts.user, verifiers.roles) : principal === facts.user;
  if (!allowed) {
    verifiers.log({ level: "info", msg: `no match in usermap "${method.map ?? ""}" for user "${facts.user}" authenticated as "${principal}"` });
    throw failed;
  }
};
