// Verify a caller against the rule that matched. One case per method; the
// `never` default makes a new method a compile error, not a silent pass.
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { HbaRule } from "../hba/rule.ts";
import type { Caller } from "../connection/caller.ts";
import { passwordFailedMessage, rejectMessage } from "./messages.ts";
import type { VerifiedCallers } from "./verified-callers.ts";
import { verifyPassword, type VerifierFile } from "./verifier-file.ts";
import { authenticateLdap, ldapFailed, type LdapSettings } from "./ldap.ts";

export interface Verifiers {
  readonly ldap: LdapSettings;
  log(event: { level: string; msg: string; server?: string; detail?: string }): void;
  /** Check the caller's password by logging in upstream as that role; throws 28P01 on failure. */
  upstreamLogin(database: string, user: string, password: string): Promise<void>;
  /** When set, passwords are checked against this file instead of an upstream login. */
  readonly verifierFile: VerifierFile | undefined;
  readonly cache: VerifiedCallers;
}

/** Run `verify` unless the same credentials passed it recently; only successes are remembered. */
async function remembered(cache: VerifiedCallers, parts: readonly string[], verify: () => Promise<void>): Promise<void> {
  const key = await cache.keyFor(parts);
  if (cache.has(key)) return;
  await verify();
  cache.remember(key);
}

export async function authenticate(rule: HbaRule, caller: Caller, verifiers: Verifiers): Promise<void> {
  const { facts, password } = caller;
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
        throw gatewayError(SQLSTATE.invalidPassword, passwordFailedMessage(facts.user));
      }
      return remembered(verifiers.cache, [rule.file, String(rule.line), method.name, facts.database, facts.user, password], async () => {
        if (!verifiers.verifierFile) return verifiers.upstreamLogin(facts.database, facts.user, password);
        if (!(await verifyPassword(verifiers.verifierFile, method.name, facts.user, password))) {
          throw gatewayError(SQLSTATE.invalidPassword, passwordFailedMessage(facts.user));
        }
      });
    case "ldap":
      if (password === undefined || password === "") throw ldapFailed(facts.user);
      return remembered(verifiers.cache, [rule.file, String(rule.line), method.name, facts.user, password], () =>
        authenticateLdap(method.ldap, facts.user, password, verifiers.ldap, verifiers.log),
      );
    case "cert":
    case "peer":
    case "oauth":
      // Not available yet: refuse (fail closed) rather than guess.
      throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, `authentication method "${method.name}" is not available in this version of hbagate`);
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}
