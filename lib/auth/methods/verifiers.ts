// What every method's check may use: the configuration snapshot's maps and
// files, the upstream login port, the LDAP settings, the verified-caller cache
// and the brute-force hooks. One value per request, built by the gateway core.
import type { HbaRule } from "../../hba/rule.ts";
import type { Caller } from "../../connection/caller.ts";
import type { IdentFile } from "../../ident/ident.ts";
import type { MatchEnvironment } from "../../hba/match.ts";
import type { VerifiedCallers } from "../verified-callers.ts";
import type { VerifierFile } from "../verifier-file.ts";
import type { LoginVerifier } from "../login-proof.ts";
import type { LdapPort } from "../ldap-port.ts";
import type { Log } from "../../log.ts";
import type { OAuthSettings } from "../oauth/settings.ts";

export interface Verifiers {
  /** pg_ident.conf maps, for `map=`. */
  readonly ident: IdentFile | undefined;
  readonly roles: Pick<MatchEnvironment, "isMember">;
  readonly ldap: LdapPort;
  /** Issuers' keys and token rules for oauth lines; undefined where the runtime cannot fetch them. */
  readonly oauth: OAuthSettings | undefined;
  readonly log: Log;
  /** Whether this gateway can see verified client certificates at all (a CA to check them, or a platform that did). */
  readonly clientCertificates: boolean;
  logOnce: LoginVerifier["logOnce"];
  /** Log in upstream as the role with the caller's password (see login-proof.ts for what that proves). */
  upstreamLogin: LoginVerifier["upstreamLogin"];
  /** When set, passwords are checked against this file instead of an upstream login. */
  readonly verifierFile: VerifierFile | undefined;
  readonly cache: VerifiedCallers;
  /**
   * The cache's epoch when the request took its configuration snapshot (the
   * rules, the verifier file, the maps): a success is remembered only if no
   * reload came since. Read when the check starts instead, a reload while the
   * request waited (for the brake's turn, a group lookup, a password prompt)
   * would let a check against the old snapshot — a password the reload
   * revoked — be remembered under the new configuration.
   */
  readonly epoch: number;
  /**
   * Told each further failure key once a verifier knows exactly whom it is
   * about to check (LDAP: the DN, before the password bind). Throwing stops
   * the verification; failures and successes then count against it too.
   */
  readonly identified?: (failureKey: string) => void | Promise<void>;
  /** Called when a verification is about to run (not for a cached success); throwing refuses the caller. */
  readonly beforeVerify?: () => Promise<void>;
}

/** What a check learned that the request's session should carry: a bearer token's verified claims. */
export interface Verified {
  readonly claims?: Readonly<Record<string, unknown>>;
  /** `claims` as JSON text, made once per verification (what request.jwt.claims is set to). */
  readonly claimsJson?: string;
  /** Who the caller is where that is not the role (a token's subject): bounded on its own in the pools. */
  readonly identity?: string;
}

/** One method's check: resolves when the caller passes the line, throws the refusal (a GatewayError) otherwise. */
export type MethodCheck<M> = (method: M, caller: Caller, rule: HbaRule, verifiers: Verifiers) => Promise<Verified | void>;

/**
 * Run `verify` unless the same credentials passed it recently (`context`:
 * the line, the method, the target; `secret`: the credential, keyed by its
 * MAC only, never kept); only successes are remembered, for the cache's TTL
 * or for the milliseconds `verify` returns when that is shorter (a token's
 * remaining life).
 */
export async function remembered(verifiers: Verifiers, context: readonly string[], secret: string, verify: () => Promise<number | void>): Promise<void> {
  await rememberedFinding(verifiers, context, secret, async () => ({ found: true, forMs: (await verify()) ?? undefined }));
}

/**
 * remembered(), for a check whose success yields something the request
 * needs (a token's verified claims): remembered with it, and a request the
 * cache covers gets it back without verifying or decoding anything again.
 * (Keys name the method, so an entry is always the kind its check left.)
 */
export async function rememberedFinding<V extends object | true>(
  verifiers: Verifiers,
  context: readonly string[],
  secret: string,
  verify: () => Promise<{ readonly found: V; readonly forMs: number | undefined }>,
): Promise<V> {
  const cache = verifiers.cache;
  const key = cache.keyFor(context, secret);
  const known = cache.found(key);
  if (known !== undefined) return known as V;
  const epoch = verifiers.epoch;
  await verifiers.beforeVerify?.();
  const { found, forMs } = await verify();
  cache.remember(key, epoch, forMs, found);
  return found;
}
