// `ldap`: the caller's password bound against the directory (simple bind or
// search+bind, through the platform's directory client: ldap.ts on Node),
// with PostgreSQL's one refusal for every reason.
import { passwordOf } from "../../connection/caller.ts";
import type { LdapOptions } from "../../hba/rule.ts";
import { ldapDnKey } from "../failure-key.ts";
import { gatewayError, SQLSTATE } from "../../errors.ts";
import { ldapFailed } from "../messages.ts";
import { remembered, type MethodCheck } from "./verifiers.ts";

export const checkLdap: MethodCheck<{ readonly name: "ldap"; readonly ldap: LdapOptions }> = async (method, caller, rule, verifiers) => {
  const { user } = caller.facts;
  const password = passwordOf(caller);
  if (password === undefined || password === "") throw ldapFailed(user);
  const authenticate = verifiers.ldap.authenticate;
  if (!authenticate) {
    // A runtime without an LDAP client: the line cannot be used, as with every server down.
    verifiers.log({ level: "error", msg: "an ldap line matched but this runtime has no LDAP client", file: rule.file, line: rule.line });
    throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "could not connect to the LDAP server");
  }
  const identified = verifiers.identified;
  return remembered(verifiers, [rule.file, String(rule.line), method.name, user], password, () =>
    authenticate(method.ldap, user, password, verifiers.ldap, verifiers.log, identified && ((dn) => identified(ldapDnKey(dn)))),
  );
};
