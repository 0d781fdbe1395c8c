// PostgreSQL's wording for refused connections (src/backend/libpq/auth.c).
import { gatewayError, SQLSTATE, type GatewayError } from "../errors.ts";
import { formatAddress } from "../hba/address.ts";
import type { AuthMethod, HbaRule } from "../hba/rule.ts";
import type { ConnectionFacts } from "../hba/match.ts";

/** The client as PostgreSQL names it in messages: its address, or "[local]". */
export function clientHost(c: ConnectionFacts): string {
  return c.transport === "local" || !c.address ? "[local]" : formatAddress(c.address);
}

function hostAndEncryption(c: ConnectionFacts): { host: string; encryption: string } {
  return { host: clientHost(c), encryption: c.ssl ? "SSL encryption" : "no encryption" };
}

export function noEntryMessage(c: ConnectionFacts): string {
  const { host, encryption } = hostAndEncryption(c);
  return c.replication
    ? `no pg_hba.conf entry for replication connection from host "${host}", user "${c.user}", ${encryption}`
    : `no pg_hba.conf entry for host "${host}", user "${c.user}", database "${c.database}", ${encryption}`;
}

export function rejectMessage(c: ConnectionFacts): string {
  const { host, encryption } = hostAndEncryption(c);
  return c.replication
    ? `pg_hba.conf rejects replication connection for host "${host}", user "${c.user}", ${encryption}`
    : `pg_hba.conf rejects connection for host "${host}", user "${c.user}", database "${c.database}", ${encryption}`;
}

/** A wrong password, or an unknown user: the same answer (28P01), as PostgreSQL gives. */
export function passwordFailed(user: string): GatewayError {
  return gatewayError(SQLSTATE.invalidPassword, `password authentication failed for user "${user}"`);
}

/** A refusal by LDAP, whatever the reason (28000, PostgreSQL's wording). */
export function ldapFailed(user: string): GatewayError {
  return gatewayError(SQLSTATE.invalidAuthorizationSpecification, `LDAP authentication failed for user "${user}"`);
}

/**
 * What a caller refused by this rule's verifier is told, for the methods that
 * check a secret; undefined for the others (nothing to hide there).
 */
export function refusalFor(rule: Pick<HbaRule, "method">, user: string): GatewayError | undefined {
  return SECRET_METHODS.has(rule.method.name) ? methodFailed(rule.method, user) : undefined;
}

const SECRET_METHODS: ReadonlySet<AuthMethod["name"]> = new Set(["password", "md5", "scram-sha-256", "ldap"]);

/**
 * A method's own refusal, for a check after it succeeded (clientcert=verify-full's
 * name check): auth.c's auth_failed wording per method, 28P01 for passwords.
 */
export function methodFailed(method: AuthMethod, user: string): GatewayError {
  switch (method.name) {
    case "password":
    case "md5":
    case "scram-sha-256":
      return passwordFailed(user);
    case "ldap":
      return ldapFailed(user);
    case "trust":
      return gatewayError(SQLSTATE.invalidAuthorizationSpecification, `"trust" authentication failed for user "${user}"`);
    case "reject":
      return gatewayError(SQLSTATE.invalidAuthorizationSpecification, `authentication failed for user "${user}": host rejected`);
    case "peer":
      return gatewayError(SQLSTATE.invalidAuthorizationSpecification, `Peer authentication failed for user "${user}"`);
    case "cert":
      return gatewayError(SQLSTATE.invalidAuthorizationSpecification, `certificate authentication failed for user "${user}"`);
    case "oauth":
      return gatewayError(SQLSTATE.invalidAuthorizationSpecification, `OAuth bearer authentication failed for user "${user}"`);
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}

/** Which check refused a caller and why: for the gateway's log only, never the caller. */
export interface RefusalReason {
  /** "verifier file", "upstream login", or the method's name. */
  readonly path: string;
  readonly reason: string;
}

const reasons = new WeakMap<GatewayError, RefusalReason>();

/** `err`, remembering for the log which path refused and why (no password may be in `reason`). */
export function refusedBy(err: GatewayError, path: string, reason: string): GatewayError {
  reasons.set(err, { path, reason });
  return err;
}

/** Why `err` refused a caller, as refusedBy recorded it, or undefined. */
export function refusalReason(err: GatewayError): RefusalReason | undefined {
  return reasons.get(err);
}
