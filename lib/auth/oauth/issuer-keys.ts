// An issuer's signing keys, as the `oauth` method needs them: found through
// its discovery document, fetched over HTTPS (the platform's port: a timeout,
// a size cap, the configured CA), kept and refreshed in the background. A
// token naming a key not yet seen makes one refetch (at most one per
// cooldown), so a rotation mid-traffic loses no request. Through an outage
// keys fetched before keep serving for a bounded time; an issuer never reached
// fails closed (08001).
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { gatewayError, SQLSTATE, type GatewayError } from "../../errors.ts";
import type { Log } from "../../log.ts";

/** GET an https URL's body as text; rejects on a status other than 200, a timeout, or a body past the cap. */
export type HttpsGet = (url: string) => Promise<string>;

export interface IssuerKeysOptions {
  /** Keys are fetched again (in the background) once this old. */
  readonly refreshMs: number;
  /** Keys this old are no longer used, however the refresh fared (the outage bound). */
  readonly maxStaleMs: number;
  /**
   * At most one fetch per issuer per this long, whoever asks (a flood of
   * made-up key ids, an issuer that is down). A token naming a key id not
   * seen yet waits for the next fetch rather than being refused, so nobody
   * can spend the budget that a real rotation needs.
   */
  readonly cooldownMs: number;
  readonly now?: () => number;
}

interface Fetched {
  readonly at: number;
  /** The issuer identifier tokens must carry in `iss` (the document's own, for a well-known URI). */
  readonly issuer: string;
  readonly keys: JWTVerifyGetKey;
  readonly kids: ReadonlySet<string>;
}

interface IssuerState {
  fetched: Fetched | undefined;
  /** The fetch on its way, or the one waiting for the cooldown to pass; everyone asking shares it. */
  next: Promise<Fetched> | undefined;
  /** When the last fetch started (the cooldown's clock). */
  lastAttempt: number;
}

const unreachable = (issuer: string): GatewayError =>
  gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "could not fetch the OAuth issuer's signing keys", {
    hint: `The issuer ${issuer} (its discovery document or JWKS) could not be reached; see the gateway's log.`,
  });

/** The discovery document's URL, as PostgreSQL 18 derives it: the issuer itself when it already names a well-known document. */
export function discoveryUrl(issuer: string): string {
  if (issuer.includes("/.well-known/")) return issuer;
  return `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

/**
 * The issuer identifier a discovery URL belongs to: the issuer itself, or for
 * a well-known URI the URL without its well-known part, whether the issuer's
 * path comes after it (RFC 8414: /.well-known/oauth-authorization-server/tenant)
 * or before it (OpenID Connect: /tenant/.well-known/openid-configuration).
 */
export function issuerOfDiscoveryUrl(issuer: string): string {
  const at = issuer.indexOf("/.well-known/");
  if (at < 0) return issuer;
  const after = issuer.slice(at + "/.well-known/".length);
  const slash = after.indexOf("/");
  return issuer.slice(0, at) + (slash < 0 ? "" : after.slice(slash));
}

export class IssuerKeys {
  private readonly issuers = new Map<string, IssuerState>();
  private readonly now: () => number;

  constructor(
    private readonly get: HttpsGet,
    private readonly options: IssuerKeysOptions,
    private readonly log: Log,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The key resolver for `issuer` and the `iss` its tokens carry, for a token whose header names `kid`. Throws 08001 when no usable keys can be had. */
  async keysFor(issuer: string, kid: string | undefined): Promise<{ readonly keys: JWTVerifyGetKey; readonly issuer: string }> {
    let state = this.issuers.get(issuer);
    if (!state) {
      state = { fetched: undefined, next: undefined, lastAttempt: Number.NEGATIVE_INFINITY };
      this.issuers.set(issuer, state);
    }
    const now = this.now();
    const current = state.fetched && now - state.fetched.at <= this.options.maxStaleMs ? state.fetched : undefined;
    if (current) {
      if (kid !== undefined && !current.kids.has(kid)) {
        // Perhaps a rotation: wait for the next fetch (the old set stays if it fails).
        try {
          return await this.fetch(issuer, state, true)!;
        } catch {
          return current;
        }
      }
      if (now - current.at >= this.options.refreshMs) this.fetch(issuer, state, false)?.catch(() => {});
      return current;
    }
    // Never fetched, or past the outage bound: a fetch now if the budget allows, else 08001 at once.
    const fetching = this.fetch(issuer, state, false);
    if (!fetching) throw unreachable(issuer);
    try {
      return await fetching;
    } catch {
      throw unreachable(issuer);
    }
  }

  /**
   * The next fetch of `issuer`'s keys: the one under way, one started now if
   * the cooldown has passed, or (when `wait`) one scheduled for when it does;
   * undefined when none may start now and the caller does not wait.
   */
  private fetch(issuer: string, state: IssuerState, wait: boolean): Promise<Fetched> | undefined {
    if (state.next) return state.next;
    const early = state.lastAttempt + this.options.cooldownMs - this.now();
    if (early > 0 && !wait) return undefined;
    const started = (async () => {
      if (early > 0) await new Promise((resolve) => setTimeout(resolve, early));
      state.lastAttempt = this.now();
      try {
        const fetched = await this.download(issuer);
        state.fetched = fetched;
        return fetched;
      } catch (err) {
        this.log({ level: "error", msg: "fetching the OAuth issuer's keys failed", issuer, error: (err as Error).message });
        throw err;
      } finally {
        state.next = undefined;
      }
    })();
    state.next = started;
    return started;
  }

  private async download(issuer: string): Promise<Fetched> {
    const discovery = parseObject(await this.get(discoveryUrl(issuer)), "discovery document");
    // The document must be the issuer's own (RFC 8414 §3.3): the one the line names, or, for a
    // well-known URI, the one that URI was built from.
    const named = discovery.issuer;
    const expected = issuerOfDiscoveryUrl(issuer);
    if (named !== expected) throw new Error(`the discovery document names issuer ${JSON.stringify(named)}, not ${expected}`);
    const jwksUri = discovery.jwks_uri;
    if (typeof jwksUri !== "string" || !jwksUri.startsWith("https://")) throw new Error("the discovery document has no https jwks_uri");
    const jwks = parseObject(await this.get(jwksUri), "JWKS");
    if (!Array.isArray(jwks.keys)) throw new Error("the JWKS has no keys array");
    const set = jwks as unknown as JSONWebKeySet;
    const kids = new Set(set.keys.flatMap((k) => (typeof k.kid === "string" ? [k.kid] : [])));
    return { at: this.now(), issuer: named, keys: createLocalJWKSet(set), kids };
  }
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`the ${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`the ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}
