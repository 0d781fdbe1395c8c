// What every `oauth` line shares: the issuers' keys and how tokens are judged.
import type { IssuerKeys } from "./issuer-keys.ts";

/** Asymmetric algorithms only: a symmetric key can never stand in for an issuer's public one. */
export const DEFAULT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"] as const;

export interface OAuthSettings {
  readonly keys: IssuerKeys;
  /** Required `aud` (one of the token's); undefined: not checked. */
  readonly audience: string | undefined;
  readonly algorithms: readonly string[];
  /** Seconds of clock skew allowed on `exp` and `nbf`. */
  readonly leewaySeconds: number;
  /** The claim that is the token's identity (PostgreSQL's authn_id), `sub` by default. */
  readonly identityClaim: string;
  /** The claim that names the role a token may use (delegate_ident_mapping, and the role /v1 asks for), `role` by default. */
  readonly roleClaim: string;
}
