// `oauth` (PostgreSQL 18): the caller's bearer token, validated by the gateway
// as PostgreSQL's validator module would: signed by a key of the line's
// issuer (algorithm allow-list, never `none` nor a symmetric key), `iss`
// exact, `aud` when configured, `exp`/`nbf` with a small leeway, every scope
// of the line granted. Its identity (`sub` by default) must then be the
// requested role, map to it through `map=`, or — with
// delegate_ident_mapping=1 — the token's role claim must name it.
// Every refusal reads the same to the caller (28000); why goes to the log.
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyOptions } from "jose";
import { bearerOf } from "../../connection/caller.ts";
import { gatewayError, GatewayError, SQLSTATE } from "../../errors.ts";
import type { OAuthOptions } from "../../hba/rule.ts";
import { identAllows } from "../../ident/ident.ts";
import type { OAuthSettings } from "../oauth/settings.ts";
import { rememberedFinding, type MethodCheck, type Verified } from "./verifiers.ts";
import { refusedBy } from "../messages.ts";

const failed = (user: string) => gatewayError(SQLSTATE.invalidAuthorizationSpecification, `OAuth bearer authentication failed for user "${user}"`);

/** The scopes a token grants: `scope` (RFC 8693, space-separated) or `scp` (a list, or a string). */
function granted(payload: JWTPayload): Set<string> {
  const out = new Set<string>();
  for (const claim of [payload.scope, payload.scp]) {
    if (typeof claim === "string") for (const s of claim.split(" ")) if (s) out.add(s);
    if (Array.isArray(claim)) for (const s of claim) if (typeof s === "string") out.add(s);
  }
  return out;
}

/** The payload under the first of `candidates` that verifies the token, if any. */
async function anyKey(token: string, candidates: joseErrors.JWKSMultipleMatchingKeys, rules: JWTVerifyOptions): Promise<JWTPayload | undefined> {
  for await (const key of candidates as unknown as AsyncIterable<CryptoKey>) {
    try {
      return (await jwtVerify(token, key, rules)).payload;
    } catch {
      // the next one
    }
  }
  return undefined;
}

export const checkOAuth: MethodCheck<{ readonly name: "oauth"; readonly map: string | undefined; readonly oauth: OAuthOptions }> = async (method, caller, rule, verifiers) => {
  const { user } = caller.facts;
  const token = bearerOf(caller);
  const settings = verifiers.oauth;
  const refuse = (why: string, extra: Record<string, unknown> = {}): never => {
    verifiers.log({ level: "info", msg: "OAuth bearer token refused", reason: why, user, file: rule.file, line: rule.line, ...extra });
    throw refusedBy(failed(user), "oauth", why);
  };
  if (token === undefined) return refuse("no bearer token");
  if (!settings) {
    verifiers.log({ level: "error", msg: "an oauth line matched but OAuth is not configured on this runtime", file: rule.file, line: rule.line });
    throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "could not fetch the OAuth issuer's signing keys");
  }
  // A token verified before is remembered until it expires, never longer, with what it was found
  // to say: the cache key is the whole token, so its claims are the ones verified, then or now.
  return rememberedFinding(verifiers, [rule.file, String(rule.line), method.name, user], token, async (): Promise<{ found: Verified; forMs: number }> => {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return refuse("the token is not a JWS");
    }
    const { keys, issuer } = await settings.keys.keysFor(method.oauth.issuer, kid);
    const rules = {
      issuer,
      ...(settings.audience !== undefined ? { audience: settings.audience } : {}),
      algorithms: [...settings.algorithms],
      clockTolerance: settings.leewaySeconds,
      requiredClaims: ["exp"],
    };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, rules));
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      // A token without a kid while the issuer publishes several keys of its algorithm (a
      // rotation's overlap): each of them is tried.
      const tried = err instanceof joseErrors.JWKSMultipleMatchingKeys ? await anyKey(token, err, rules) : undefined;
      if (!tried) return refuse(err instanceof joseErrors.JOSEError ? err.code : "invalid token");
      payload = tried;
    }
    const scopes = granted(payload);
    const missing = method.oauth.scope.split(" ").filter((s) => s && !scopes.has(s));
    if (missing.length > 0) return refuse("a required scope is not granted", { missing });
    const identity = payload[settings.identityClaim];
    if (typeof identity !== "string" || identity === "") return refuse(`the token has no ${settings.identityClaim} claim`);
    let allowed: boolean;
    if (method.oauth.delegateIdentMapping) {
      // The token decides which role it may use.
      allowed = payload[settings.roleClaim] === user;
    } else if (method.map !== undefined) {
      allowed = verifiers.ident !== undefined && (await identAllows(verifiers.ident, method.map, identity, user, verifiers.roles));
    } else {
      allowed = identity === user;
    }
    if (!allowed) return refuse(method.map !== undefined ? `no match in usermap "${method.map}" for the token's identity` : "the token does not allow this role", { identity });
    // Shared by every request the cache covers: frozen, so that none can change what the next one sees.
    const found: Verified = Object.freeze({ claims: Object.freeze(payload), claimsJson: JSON.stringify(payload), identity });
    return { found, forMs: (payload.exp ?? 0) * 1000 - Date.now() };
  });
};
