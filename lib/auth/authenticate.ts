// Verify a caller against the rule that matched. One case per method; the
// `never` default makes a new method a compile error, not a silent pass.
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { HbaRule } from "../hba/rule.ts";
import type { Caller } from "../connection/caller.ts";
import { ldapFailed, passwordFailed, rejectMessage } from "./messages.ts";
import type { VerifiedCallers } from "./verified-callers.ts";
import { identAllows, type IdentFile } from "../ident/ident.ts";
import type { MatchEnvironment } from "../hba/match.ts";
import type { VerifierFile } from "./verifier-file.ts";
import { verifyPassword } from "./verify-password.ts";
import { verifyByLogin, type LoginVerifier } from "./login-proof.ts";
import { authenticateLdap, type LdapSettings } from "./ldap.ts";
import { ldapDnKey } from "./failure-key.ts";

export interface Verifiers {
  /** pg_ident.conf maps, for `map=` on peer lines. */
  readonly ident: IdentFile | undefined;
  readonly roles: Pick<MatchEnvironment, "isMember">;
  readonly ldap: LdapSettings;
  log(event: { level: string; msg: string; [k: string]: string | number | undefined }): void;
  logOnce: LoginVerifier["logOnce"];
  /** Log in upstream as the role with the caller's password (see login-proof.ts for what that proves). */
  upstreamLogin: LoginVerifier["upstreamLogin"];
  /** When set, passwords are checked against this file instead of an upstream login. */
  readonly verifierFile: VerifierFile | undefined;
  readonly cache: VerifiedCallers;
  /**
   * Told each further failure key once a verifier knows exactly whom it is
   * about to check (LDAP: the DN, before the password bind). Throwing stops
   * the verification; failures and successes then count against it too.
   */
  readonly identified?: (failureKey: string) => void;
  /** Called when a verification is about to run (not for a cached success); throwing refuses the caller. */
  readonly beforeVerify?: () => Promise<void>;
}

/** Run `verify` unless the same credentials passed it recently; only successes are remembered. */
async function remembered(verifiers: Verifiers, parts: readonly string[], verify: () => Promise<void>): Promise<void> {
  const cache = verifiers.cache;
  const key = cache.keyFor(parts);
  if (cache.has(key)) return;
  await verifiers.beforeVerify?.();
  await verify();
  cache.remember(key);
}

export async function authenticate(rule: HbaRule, caller: Caller, verifiers: Verifiers): Promise<void> {
  const { facts, password } = caller;
  const identified = verifiers.identified;
  const method = rule.method;
  switch (method.name) {
    case "trust":
      return;
    case "reject":
      throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, rejectMessage(facts));
    case "password":
    case "md5":
    case "scram-sha-256":
      // PostgreSQL refuses an empty password before any check.
      if (password === undefined || password === "") {
        throw passwordFailed(facts.user);
      }
      return remembered(verifiers, [rule.file, String(rule.line), method.name, facts.database, facts.user, password], async () => {
        if (!verifiers.verifierFile) return verifyByLogin(method.name, facts.database, facts.user, password, verifiers);
        if (!(await verifyPassword(verifiers.verifierFile, method.name, facts.user, password))) {
          throw passwordFailed(facts.user);
        }
      });
    case "peer": {
      // The serverless counterpart of "the operating system says who you are": the platform
      // authenticated the caller (IAM) and names it; the name must be the user, or map to it.
      const failed = gatewayError(SQLSTATE.invalidAuthorizationSpecification, `Peer authentication failed for user "${facts.user}"`);
      if (facts.transport !== "local" || caller.systemUser === undefined) throw failed;
      if (method.map !== undefined && !verifiers.ident) throw failed;
      const allowed = verifiers.ident
        ? await identAllows(verifiers.ident, method.map, caller.systemUser, facts.user, verifiers.roles)
        : caller.systemUser === facts.user;
      if (!allowed) {
        verifiers.log({ level: "info", msg: `no match in usermap "${method.map ?? ""}" for user "${facts.user}" authenticated as "${caller.systemUser}"` });
        throw failed;
      }
      return;
    }
    case "ldap":
      if (password === undefined || password === "") throw ldapFailed(facts.user);
      return remembered(verifiers, [rule.file, String(rule.line), method.name, facts.user, password], () =>
        authenticateLdap(method.ldap, facts.user, password, verifiers.ldap, verifiers.log, identified && ((dn) => identified(ldapDnKey(dn)))),
      );
    case "cert":
    case "oauth":
      // Not available yet: refuse (fail closed) rather than guess.
      throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, `authentication method "${method.name}" is not available in this version of hbagate`);
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}
