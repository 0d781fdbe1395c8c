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
  /** No second fetch for an unknown key within this long of the last. */
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
  inFlight: Promise<Fetched> | undefined;
  lastAttempt: number;
  /** When a token's unknown key id last caused a fetch (the cooldown's clock: a flood of made-up ids costs one fetch per cooldown). */
  lastKidFetch: number;
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
      state = { fetched: undefined, inFlight: undefined, lastAttempt: 0, lastKidFetch: Number.NEGATIVE_INFINITY };
      this.issuers.set(issuer, state);
    }
    const now = this.now();
    const current = state.fetched && now - state.fetched.at <= this.options.maxStaleMs ? state.fetched : undefined;
    if (current) {
      const unknownKid = kid !== undefined && !current.kids.has(kid);
      if (unknownKid && (state.inFlight || now - state.lastKidFetch >= this.options.cooldownMs)) {
        // Perhaps a rotation: wait for the new set (a fetch already on its way, or one of its
        // own); the old one stays if the fetch fails.
        if (!state.inFlight) state.lastKidFetch = now;
        try {
          return await this.fetch(issuer, state);
        } catch {
          return current;
        }
      }
      if (now - current.at >= this.options.refreshMs && now - state.lastAttempt >= this.options.cooldownMs) void this.fetch(issuer, state).catch(() => {});
      return current;
    }
    try {
      return await this.fetch(issuer, state);
    } catch {
      throw unreachable(issuer);
    }
  }

  private fetch(issuer: string, state: IssuerState): Promise<Fetched> {
    state.inFlight ??= (async () => {
      state.lastAttempt = this.now();
      try {
        const fetched = await this.download(issuer);
        state.fetched = fetched;
        return fetched;
      } catch (err) {
        this.log({ level: "error", msg: "fetching the OAuth issuer's keys failed", issuer, error: (err as Error).message });
        throw err;
      } finally {
        state.inFlight = undefined;
      }
    })();
    return state.inFlight;
  }

  private async download(issuer: string): Promise<Fetched> {
    const discovery = parseObject(await this.get(discoveryUrl(issuer)), "discovery document");
    // The document must be the issuer's own (RFC 8414 §3.3); a well-known URI takes the issuer it names.
    const named = discovery.issuer;
    if (typeof named !== "string" || !named.startsWith("https://")) throw new Error("the discovery document has no https issuer");
    if (named !== issuer && !issuer.includes("/.well-known/")) throw new Error(`the discovery document names issuer ${JSON.stringify(named)}, not ${issuer}`);
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
