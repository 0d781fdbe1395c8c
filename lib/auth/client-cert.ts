// The client certificate a line demands (PostgreSQL 19.1 "The pg_hba.conf
// File", clientcert= and clientname=; 20.12 "Certificate Authentication";
// auth.c: ClientAuthentication, CheckCertAuth). In PostgreSQL's order:
// before the method, a line with clientcert= refuses a caller without a
// verified certificate; after the method succeeded, verify-full (and every
// cert line) compares the certificate's CN — or its whole subject DN with
// clientname=DN — with the user, through the line's map= when it has one.
import { certificateOf, type Caller } from "../connection/caller.ts";
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { HbaRule } from "../hba/rule.ts";
import { identAllows } from "../ident/ident.ts";
import { methodFailed } from "./messages.ts";
import type { Verifiers } from "./methods/verifiers.ts";

/** Before the method runs: a line with clientcert= (every cert line) needs a verified certificate. */
export function requireClientCertificate(rule: HbaRule, caller: Caller, verifiers: Verifiers): void {
  if (rule.clientCert === undefined) return;
  // PostgreSQL without ssl_ca_file: the line cannot be satisfied, and the server says why.
  if (!verifiers.clientCertificates) {
    verifiers.log({ level: "error", msg: "a line needs a client certificate but none can be verified here: set HBAGATE_TLS_CLIENT_CA_FILE", file: rule.file, line: rule.line });
    throw gatewayError(SQLSTATE.configFileError, "client certificates can only be checked if a root certificate store is available");
  }
  if (certificateOf(caller) === undefined) {
    throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "connection requires a valid client certificate");
  }
}

/**
 * The name check (CheckCertAuth): the certificate's CN or DN must be the user,
 * or map to it through the line's map=. Returns the certificate's identity
 * (its subject DN, PostgreSQL's authn_id for cert) or throws the method's own
 * refusal (auth_failed: "certificate authentication failed …" for cert,
 * "password authentication failed …" for a password line, …).
 */
export async function checkCertificateName(rule: HbaRule, caller: Caller, verifiers: Verifiers): Promise<string> {
  const { user } = caller.facts;
  const names = certificateOf(caller);
  const refuse = (why: string, extra: Record<string, unknown> = {}): never => {
    verifiers.log({ level: "info", msg: `certificate validation failed for user "${user}": ${why}`, file: rule.file, line: rule.line, ...extra });
    throw methodFailed(rule.method, user);
  };
  // requireClientCertificate ran first; a caller without one never gets here.
  if (names === undefined) return refuse("no client certificate");
  const byDn = rule.clientCert?.name === "DN";
  const presented = byDn ? names.dn : names.cn;
  if (presented === undefined || presented === "") return refuse("client certificate contains no user name");
  const map = "map" in rule.method ? rule.method.map : undefined;
  const allowed =
    map === undefined || map === ""
      ? presented === user
      : verifiers.ident !== undefined && (await identAllows(verifiers.ident, map, presented, user, verifiers.roles));
  if (!allowed) {
    return refuse(map === undefined ? `${byDn ? "DN" : "CN"} mismatch` : `no match in usermap "${map}"`, { [byDn ? "dn" : "cn"]: presented });
  }
  return names.dn;
}
