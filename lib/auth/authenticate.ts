// Verify a caller against the rule that matched: each method's check lives in
// methods/, one module per method. The `never` default makes a new method a
// compile error, not a silent pass: a new method is one module and one case.
import type { HbaRule } from "../hba/rule.ts";
import type { Caller } from "../connection/caller.ts";
import { checkLdap } from "./methods/ldap.ts";
import { checkOAuth } from "./methods/oauth.ts";
import { checkPassword } from "./methods/password.ts";
import { checkPeer } from "./methods/peer.ts";
import { checkReject } from "./methods/reject.ts";
import { checkTrust } from "./methods/trust.ts";
import { checkCert } from "./methods/cert.ts";
import { checkCertificateName, requireClientCertificate } from "./client-cert.ts";
import type { Verified, Verifiers } from "./methods/verifiers.ts";

export type { Verified, Verifiers } from "./methods/verifiers.ts";

/**
 * The line's client certificate requirement around its method, in
 * PostgreSQL's order: no verified certificate refuses before the method
 * runs; verify-full's name check follows a method that succeeded (cert lines
 * check the name as their method).
 */
export async function authenticate(rule: HbaRule, caller: Caller, verifiers: Verifiers): Promise<Verified | void> {
  requireClientCertificate(rule, caller, verifiers);
  const verified = await byMethod(rule, caller, verifiers);
  if (rule.clientCert?.verify === "verify-full" && rule.method.name !== "cert") await checkCertificateName(rule, caller, verifiers);
  return verified;
}

async function byMethod(rule: HbaRule, caller: Caller, verifiers: Verifiers): Promise<Verified | void> {
  const method = rule.method;
  switch (method.name) {
    case "trust":
      return checkTrust(method, caller, rule, verifiers);
    case "reject":
      return checkReject(method, caller, rule, verifiers);
    case "password":
    case "md5":
    case "scram-sha-256":
      return checkPassword(method, caller, rule, verifiers);
    case "peer":
      return checkPeer(method, caller, rule, verifiers);
    case "ldap":
      return checkLdap(method, caller, rule, verifiers);
    case "oauth":
      return checkOAuth(method, caller, rule, verifiers);
    case "cert":
      return checkCert(method, caller, rule, verifiers);
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}
