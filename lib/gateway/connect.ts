// The gateway's core, the same for every framing (/v1, /sql, Lambda, and
// later WebSocket sessions): caller -> rule -> verification -> lease on the
// caller's pool. A framing decodes its request into a Caller (credentials
// included, never refused for their kind before the rules run) and formats
// what the lease's statements return; everything in between is here.
import { authenticate, type Verified } from "../auth/authenticate.ts";
import { lockedOut, type FailureLimiter } from "../auth/failure-limiter.ts";
import { brakeApplies, failureAddressFor, failureKeyFor, successClearsFailures } from "../auth/failure-key.ts";
import type { LdapPort } from "../auth/ldap-port.ts";
import type { OAuthSettings } from "../auth/oauth/settings.ts";
import type { StartupSettings } from "../upstream/startup-settings.ts";
import { noEntryMessage, refusalFor, refusalReason } from "../auth/messages.ts";
import type { SharedFailures } from "../auth/shared-failures.ts";
import type { VerifiedCallers } from "../auth/verified-callers.ts";
import type { VerifierFile } from "../auth/verifier-file.ts";
import { passwordOf, principalOf, type Caller } from "../connection/caller.ts";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { matchHba, type MatchEnvironment } from "../hba/match.ts";
import type { HbaRule } from "../hba/rule.ts";
import type { IdentFile } from "../ident/ident.ts";
import type { Log, LogEvent } from "../log.ts";
import type { Pools, Session } from "../upstream/pools.ts";

export interface CoreDeps {
  /** The rules in force; a reload swaps what this returns, never a half-valid set. */
  rules(): readonly HbaRule[];
  /** The verifier file in force, if passwords are checked against one. */
  verifierFile(): VerifierFile | undefined;
  /** The pg_ident.conf maps in force, if any. */
  ident(): IdentFile | undefined;
  readonly pools: Pick<Pools, "use" | "login">;
  readonly environment: MatchEnvironment;
  readonly ldap: LdapPort;
  readonly oauth?: OAuthSettings | undefined;
  /** Verified client certificates can reach the gateway (a CA configured, or a platform that verifies them); absent: none can. */
  readonly clientCertificates?: boolean;
  readonly verifiedCallers: VerifiedCallers;
  readonly failureLimiter: FailureLimiter;
  /** The brake's failures as every instance counted them, where a shared store is configured. */
  readonly sharedFailures?: SharedFailures;
  /** Resolves once the configuration is in force; throws (08001) while it cannot be had. Absent: always in force. */
  configured?(): Promise<void>;
  readonly log: Log;
}

/** Runs a function on the caller's pool, a connection held throughout. */
export type Lease = <T>(fn: (session: Session) => Promise<T>) => Promise<T>;

/** What a session framing gets once its caller is verified: who logs in upstream, and with what. */
export interface Admitted {
  readonly database: string;
  readonly user: string;
  /** The caller's verified password, for a passthrough login (none configured for the role). */
  readonly password: string | undefined;
  /** Settings of the gateway's own for the session (a bearer token's verified claims). */
  readonly settings: StartupSettings;
  /** Who the caller is apart from the role, bounded on its own (boundedIdentity); undefined for none. */
  readonly identity: string | undefined;
}

/**
 * Asks the client for its password, in the framing's own way (a session's
 * AuthenticationCleartextPassword): called only when the matched line's method
 * checks one (for `oauth`, the bearer token in its place).
 */
export type AskPassword = () => Promise<string>;

export interface GatewayCore {
  /** The caller verified against the rule that matches it, or the refusal (a GatewayError with PostgreSQL's SQLSTATE). */
  connect(caller: Caller): Promise<Lease>;
  /**
   * The same verification for a session framing, whose credentials come when
   * asked for; then `open` logs in upstream on a connection of the session's
   * own. The upstream refusing that login after the caller was verified reads
   * as the line's refusal, as for requests.
   */
  admit<T>(caller: Caller, ask: AskPassword, open: (admitted: Admitted) => Promise<T>): Promise<T>;
}

/** Methods that check something the client sends in answer to a password request. */
const ASKS_PASSWORD: ReadonlySet<HbaRule["method"]["name"]> = new Set(["password", "md5", "scram-sha-256", "ldap", "oauth"]);

export function gatewayCore(deps: CoreDeps): GatewayCore {
const upstreamLogin = (d: string, u: string, p: string) => deps.pools.login(d, u, p);
// Reasons logged once per role: a bounded set, forgotten whole when full.
const logged = new Set<string>();
const logOnce = (key: string, event: LogEvent) => {
  if (logged.has(key)) return;
  if (logged.size >= 10_000) logged.clear();
  logged.add(key);
  deps.log(event);
};

/** The first line that matches, or PostgreSQL's refusal when none does. */
async function ruleFor(rules: readonly HbaRule[], caller: Caller): Promise<HbaRule> {
  const { rule } = await matchHba(rules, caller.facts, deps.environment);
  if (!rule) throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, noEntryMessage(caller.facts));
  return rule;
}

/** request -> identity -> rule -> verification: the same for every framing. */
async function verify(asked: Caller, ask?: AskPassword): Promise<{ rule: HbaRule; caller: Caller; verified: Verified | void }> {
  await deps.configured?.();
  // One snapshot per request: a reload meanwhile does not mix two configurations.
  // The cache's epoch with it: a reload clears the cache right after swapping the configuration,
  // so a success found under this snapshot is remembered only while no reload has come since.
  const snapshot = () => ({ rules: deps.rules(), verifierFile: deps.verifierFile(), ident: deps.ident(), epoch: deps.verifiedCallers.epoch });
  let config = snapshot();
  let rule = await ruleFor(config.rules, asked);
  let caller = asked;
  // A session's credentials: asked for before the brake's turn is taken, so a slow client holds none.
  if (ask && ASKS_PASSWORD.has(rule.method.name)) {
    const answer = await ask();
    // The configuration in force once the credentials are in hand decides: a reload while the
    // client was typing applies to it (a line now `reject` refuses; one now asking for a
    // password it was not asked for finds none).
    config = snapshot();
    rule = await ruleFor(config.rules, asked);
    caller = withAnswer(asked, rule, answer);
  }
  const { verifierFile, ident, epoch } = config;
  // Who is asking, for the brute-force brake: the client address (an IPv6 /64, or the socket)
  // and the identity the rule's verifier will compare (under LDAP "TEST1" is test1).
  const who = failureAddressFor(caller.facts);
  const identity = failureKeyFor(rule, caller.facts.user);
  // Refused here when locked; otherwise a turn, so parallel guesses cannot overtake the count.
  // (Not on lines whose credentials cannot be guessed: brakeApplies.)
  const braked = brakeApplies(rule);
  const release = braked ? await deps.failureLimiter.admit(who, identity, caller.facts.user) : undefined;
  // Across instances: a verification about to run is counted first (a cached success pays nothing).
  const shared = braked ? deps.sharedFailures : undefined;
  /** The keys counted across instances for this verification (its attempt stands as a failure until it succeeds). */
  const counted: string[] = [];
  const attempt = async (key: string): Promise<void> => {
    if (!shared) return;
    const standing = await shared.attempt(who, key);
    if (standing === undefined) return;
    counted.push(key);
    if (standing.lockedMs > 0) throw lockedOut(caller.facts.user, standing.lockedMs);
  };
  const beforeVerify = shared ? () => attempt(identity) : undefined;
  // The verifier may name the identity more exactly on the way (LDAP: the DN it is about to bind):
  // counted under that name too, here and across instances, so another name for the same entry
  // (a filter that also takes its mail) meets the same count.
  const identities = [identity];
  const identified = async (key: string) => {
    const locked = braked ? deps.failureLimiter.check(who, key, caller.facts.user) : undefined;
    if (locked) throw locked;
    identities.push(key);
    await attempt(key);
  };
  let verified: Verified | void;
  try {
    verified = await authenticate(rule, caller, {
      upstreamLogin,
      logOnce,
      verifierFile,
      ident,
      roles: deps.environment,
      cache: deps.verifiedCallers,
      epoch,
      ldap: deps.ldap,
      oauth: deps.oauth,
      clientCertificates: deps.clientCertificates ?? false,
      log: deps.log,
      identified,
      ...(beforeVerify ? { beforeVerify } : {}),
    });
    if (successClearsFailures(rule)) {
      for (const key of identities) deps.failureLimiter.succeeded(who, key);
      for (const key of counted) await shared!.succeeded(who, key);
    }
  } catch (err) {
    if (err instanceof GatewayError && err.code.startsWith("28") && rule.method.name !== "reject") {
      // The server log names the line, as PostgreSQL's does; the caller never sees it.
      // Which check refused and why (the verifier file, an upstream login, the directory, …): the
      // caller hears only PostgreSQL's words, so this line is where the operator finds out.
      const why = refusalReason(err) ?? { path: rule.method.name, reason: err.message };
      deps.log({ level: "info", msg: "authentication failed", code: err.code, user: caller.facts.user, database: caller.facts.database, file: rule.file, line: rule.line, method: rule.method.name, path: why.path, reason: why.reason });
      // An attempt counted across instances already stands as a failure; a key refused before it was counted is added.
      if (braked) await Promise.all([...identities.map((key) => deps.failureLimiter.failed(who, key)), ...identities.filter((key) => !counted.includes(key)).map((key) => shared?.failed(who, key))]);
    }
    throw err;
  } finally {
    release?.();
  }
  return { rule, caller, verified };
}

async function connect(asked: Caller): Promise<Lease> {
  const { rule, caller, verified } = await verify(asked);
  const { database, user } = caller.facts;
  // A bearer token's verified claims, for row-level security (PostgREST's request.jwt.claims),
  // after the caller's own settings so that none of theirs can stand in for them. The session
  // reset after the request removes them.
  const settings = claimSettings(verified);
  return async (fn) => {
    try {
      return await deps.pools.use(database, user, passwordOf(caller), caller.startup, fn, boundedIdentity(rule, caller, verified), settings);
    } catch (err) {
      throw loginRefusal(rule, caller, err);
    }
  };
}

async function admit<T>(asked: Caller, ask: AskPassword, open: (admitted: Admitted) => Promise<T>): Promise<T> {
  const { rule, caller, verified } = await verify(asked, ask);
  const settings = claimSettings(verified);
  try {
    return await open({ database: caller.facts.database, user: caller.facts.user, password: passwordOf(caller), settings, identity: boundedIdentity(rule, caller, verified) });
  } catch (err) {
    throw loginRefusal(rule, caller, err);
  }
}

/**
 * The upstream refusing the request's own login (FATAL, class 28: no such
 * role there, its line for the gateway, a changed password) after the
 * caller's password was accepted would tell the caller the password was
 * right: it reads as that line's ordinary refusal instead, and the reason
 * goes to the log. (A statement cannot raise FATAL, so this is the login.)
 */
function loginRefusal(rule: HbaRule, caller: Caller, err: unknown): unknown {
  if (!(err instanceof GatewayError) || !err.code.startsWith("28") || err.fields.severity !== "FATAL") return err;
  const { user, database } = caller.facts;
  const refusal = refusalFor(rule, user);
  if (!refusal) return err;
  deps.log({ level: "warn", msg: "the upstream refused the request's login after the caller was verified", user, database, code: err.code, reason: err.message, file: rule.file, line: rule.line });
  return refusal;
}

  return { connect, admit };
}

/**
 * Who a verified caller is apart from the role, for the bounds on one caller
 * identity (many end users share a role): a principal the platform named
 * (peer, mapped to the role), or the identity its verification established
 * (a token's subject); undefined where the role is the only name.
 */
function boundedIdentity(rule: HbaRule, caller: Caller, verified: Verified | void): string | undefined {
  // A name means one caller only where it was established: a subject is unique within its issuer
  // (its verified `iss`), a principal within the platform that named it, a certificate's name
  // within the CA. Counted under that namespace, so the same string from elsewhere (another
  // issuer's "alice", a Unix user "alice") is another caller and takes none of this one's places.
  if (rule.method.name === "peer") {
    const principal = principalOf(caller);
    return principal === undefined ? undefined : namespaced("peer", null, principal);
  }
  if (verified?.identity === undefined) return undefined;
  // The verified-caller cache hands back the same finding for a token until it expires: its
  // identity is made once (and, as the same string, hashed once by the pools' maps).
  let made = identities.get(verified);
  if (made === undefined) {
    const iss = rule.method.name === "oauth" ? verified.claims?.iss : undefined;
    made = namespaced(rule.method.name, typeof iss === "string" ? iss : null, verified.identity);
    identities.set(verified, made);
  }
  return made;
}

/** Findings' bounded identities; a finding is only ever made by one method's check. */
const identities = new WeakMap<Verified, string>();

function namespaced(method: string, issuer: string | null, name: string): string {
  return JSON.stringify([method, issuer, name]);
}

/**
 * A bearer token's verified claims as settings of the gateway's own, for
 * row-level security (PostgREST's request.jwt.claims); none for other methods.
 */
function claimSettings(verified: Verified | void): StartupSettings {
  if (!verified?.claims) return NO_SETTINGS;
  let made = claims.get(verified);
  if (made === undefined) {
    made = Object.freeze([Object.freeze(["request.jwt.claims", verified.claimsJson ?? JSON.stringify(verified.claims)] as const)]);
    claims.set(verified, made);
  }
  return made;
}

const NO_SETTINGS: StartupSettings = Object.freeze([]);
/** Findings' claims as settings, made once per finding as its identity is. */
const claims = new WeakMap<Verified, StartupSettings>();

/** The client's answer to a password request, as the credential the line's method checks. */
function withAnswer(caller: Caller, rule: HbaRule, answer: string): Caller {
  const credential = rule.method.name === "oauth" ? ({ kind: "bearer", token: answer } as const) : ({ kind: "password", password: answer } as const);
  return { ...caller, credentials: [...caller.credentials, credential] };
}
