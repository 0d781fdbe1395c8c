// What every `oauth` line shares: the issuers' keys and how tokens are judged.
import type { IssuerKeys } from "./issuer-keys.ts";

export interface OAuthSettings {
  readonly keys: IssuerKeys;
  /** Required `aud` (one of the token's); undefined: not checked. */
  readonly audience: string | undefined;
  /** Accepted JWS algorithms: asymmetric only (HBAGATE_OAUTH_ALGORITHMS), so a symmetric key never stands in for a public one. */
  readonly algorithms: readonly string[];
  /** Seconds of clock skew allowed on `exp` and `nbf`. */
  readonly leewaySeconds: number;
  /** The claim that is the token's identity (PostgreSQL's authn_id), `sub` by default. */
  readonly identityClaim: string;
  /** The claim that names the role a token may use (delegate_ident_mapping, and the role /v1 asks for), `role` by default. */
  readonly roleClaim: string;
}
