// `ldap`: the caller's password bound against the directory (simple bind or
// search+bind, lib/auth/ldap.ts), with PostgreSQL's one refusal for every reason.
import { passwordOf } from "../../connection/caller.ts";
import type { LdapOptions } from "../../hba/rule.ts";
import { ldapDnKey } from "../failure-key.ts";
import { authenticateLdap } from "../ldap.ts";
import { ldapFailed } from "../messages.ts";
import { remembered, type MethodCheck } from "./verifiers.ts";

export const checkLdap: MethodCheck<{ readonly name: "ldap"; readonly ldap: LdapOptions }> = async (method, caller, rule, verifiers) => {
  const { user } = caller.facts;
  const password = passwordOf(caller);
  if (password === undefined || password === "") throw ldapFailed(user);
  const identified = verifiers.identified;
  return remembered(verifiers, [rule.file, String(rule.line), method.name, user, password], () =>
    authenticateLdap(method.ldap, user, password, verifiers.ldap, verifiers.log, identified && ((dn) => identified(ldapDnKey(dn)))),
  );
};
