// Who is calling: the transport facts the adapter saw, the database in the
// URL, and the credentials each framing decoded. Nothing here trusts a header
// that a client could forge. Decoding never refuses a credential for being of
// a kind the rules might not want: the matched line's method decides.
import { decodeJwt } from "jose";
import { LRUCache } from "lru-cache";
import { clientAddress } from "./client-address.ts";
import type { ConnectionFacts } from "../hba/match.ts";
import { gatewayError, SQLSTATE } from "../errors.ts";

/** What the runtime adapter knows about the connection. */
export interface PeerInfo {
  readonly transport: "local" | "host";
  /** Socket peer address (host transport). */
  readonly address?: string;
  /** TLS on the connection. */
  readonly encrypted: boolean;
  /** Who the platform says is calling (local connections): the `peer` method's system user. */
  readonly systemUser?: string;
  /**
   * The client certificate the platform saw and checked against the trusted
   * CA (the TLS handshake, a trusted proxy's header, API Gateway's mutual
   * TLS); absent when none was presented. Never what a caller merely claims.
   */
  readonly certificate?: PeerCertificate;
}

/**
 * A presented client certificate: verified, with the names hba compares
 * (PostgreSQL's peer CN and its subject DN in RFC 2253 form), or refused by
 * verification (why, as OpenSSL's code: CERT_HAS_EXPIRED, CERT_REVOKED, …).
 */
export type PeerCertificate =
  | { readonly verified: true; readonly names: CertificateNames }
  | { readonly verified: false; readonly reason: string };

export interface CertificateNames {
  /** The subject's first commonName, as PostgreSQL reads it; undefined when there is none. */
  readonly cn: string | undefined;
  /** The whole subject DN as OpenSSL prints it with XN_FLAG_RFC2253 (what `clientname=DN` compares). */
  readonly dn: string;
}

/**
 * A credential the caller presented, or one the platform proved. A caller may
 * carry several (a password and the IAM principal that signed the request);
 * each method uses the kind it checks. Never logged.
 */
export type Credential =
  | { readonly kind: "password"; readonly password: string }
  /** `Authorization: Bearer`: a token for the oauth method. */
  | { readonly kind: "bearer"; readonly token: string }
  /** Who the platform says is calling (an IAM principal's ARN): the `peer` method's system user. */
  | { readonly kind: "principal"; readonly name: string }
  /** A client certificate the platform verified against the trusted CA: for `cert` and `clientcert=`. */
  | { readonly kind: "certificate"; readonly names: CertificateNames };

export interface Caller {
  readonly facts: ConnectionFacts;
  readonly credentials: readonly Credential[];
  /** Startup parameters for the upstream session (application_name, options). */
  readonly startup: StartupParameters;
}

/** The caller's password, when one was sent. */
export const passwordOf = (c: Caller): string | undefined => {
  for (const k of c.credentials) if (k.kind === "password") return k.password;
  return undefined;
};

/** The platform-proven identity of a local connection. */
export const principalOf = (c: Caller): string | undefined => {
  for (const k of c.credentials) if (k.kind === "principal") return k.name;
  return undefined;
};

/** The names of the caller's verified client certificate, when it presented one. */
export const certificateOf = (c: Caller): CertificateNames | undefined => {
  for (const k of c.credentials) if (k.kind === "certificate") return k.names;
  return undefined;
};

/** The bearer token, when one was sent. */
export const bearerOf = (c: Caller): string | undefined => {
  for (const k of c.credentials) if (k.kind === "bearer") return k.token;
  return undefined;
};

/** The startup parameters a caller may set; others in a connection string are client-side (sslmode, …) and ignored. */
export interface StartupParameters {
  readonly application_name?: string;
  readonly options?: string;
}

export function startupParameters(params: Readonly<Record<string, string>>): StartupParameters {
  const out: { application_name?: string; options?: string } = {};
  for (const key of ["application_name", "options"] as const) {
    const value = params[key];
    if (value === undefined) continue;
    if (value.includes("\0")) throw gatewayError(SQLSTATE.protocolViolation, `invalid ${key}: contains a NUL byte`);
    out[key] = value;
  }
  return out;
}

/** PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes; longer names are refused rather than silently cut. */
const MAX_NAME_BYTES = 63;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function checkName(kind: "user" | "database", name: string): void {
  if (name === "") throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, `no PostgreSQL ${kind} name specified`);
  if (name.includes("\0")) throw gatewayError(SQLSTATE.protocolViolation, `invalid ${kind} name: contains a NUL byte`);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short names need no encoding to be measured.
  if (name.length * 3 > MAX_NAME_BYTES && utf8.encode(name).length > MAX_NAME_BYTES) {
    throw gatewayError(SQLSTATE.invalidParameterValue, `${kind} name is longer than ${MAX_NAME_BYTES} bytes`);
  }
}

/** A bearer token's characters (RFC 6750's b64token), as sent after "Bearer ". */
const BEARER = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i;

/** `Authorization: Bearer …`'s token, undefined for another scheme; a malformed Bearer header is refused. */
export function decodeBearer(header: string | undefined): string | undefined {
  if (header === undefined || !/^Bearer(\s|$)/i.test(header)) return undefined;
  const m = BEARER.exec(header);
  if (!m) throw gatewayError(SQLSTATE.protocolViolation, "malformed Authorization header: expected Bearer and a token");
  return m[1]!;
}

function decodeBasic(header: string): { user: string; password: string } {
  const m = /^Basic[ ]+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) throw gatewayError(SQLSTATE.protocolViolation, "malformed Authorization header: expected Basic or Bearer credentials");
  let text: string;
  try {
    const binary = atob(m[1]!);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    text = strictUtf8.decode(bytes);
  } catch {
    throw gatewayError(SQLSTATE.protocolViolation, "malformed Authorization header: credentials are not base64 UTF-8");
  }
  const colon = text.indexOf(":");
  if (colon < 0) throw gatewayError(SQLSTATE.protocolViolation, "malformed Authorization header: no ':' between user and password");
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

export interface CallerSettings {
  /** Role used when a request carries no credentials (for trust rules); none means such requests are refused. */
  readonly anonymousUser: string | undefined;
  /**
   * The role a bearer token asks for: its `claim` (read before verification,
   * only to pick the hba line: the oauth method verifies the token, claim
   * included), else `fallback`.
   */
  readonly bearerRole?: { readonly claim: string; readonly fallback: string | undefined };
}

/** What an entry costs beside its characters (two string headers, the map's and the list's slots), measured at about 80 bytes; characters count two bytes, as V8 keeps any that are not Latin-1. */
const ENTRY_BYTES = 96;

/**
 * The role claims of JWT payloads seen lately, by the claim's name and the
 * payload segment's text: a cached bearer request's role is read here, not
 * base64-decoded and parsed again (about as much CPU as the rest of its
 * authentication). Reading a claim is a function of that text, so an entry
 * is right under any configuration. What is kept is the key (a copy: a slice
 * of the request's Authorization header would keep the whole header, the
 * token's signature included, for as long as the entry) and the claim's
 * string, never the decoded payload, whose objects can be many times its
 * text; bounded by the bytes held (1 MiB), so anyone sending junk payloads
 * pushes out old entries, never more memory.
 */
const roleClaims = new LRUCache<string, string>({ max: 16_384, maxSize: 1 << 20, sizeCalculation: (value, key) => ENTRY_BYTES + 2 * (key.length + value.length) });
/** Payload segments longer than this are decoded each time, never kept. */
const MAX_CACHED_PAYLOAD = 4096;

/** A JWT's unverified claim, when it is a non-empty string. */
function claimOf(token: string, claim: string): string | undefined {
  // Compact JWS only (three segments), as decodeJwt insists.
  const first = token.indexOf(".");
  const second = token.indexOf(".", first + 1);
  if (first < 0 || second < 0 || token.indexOf(".", second + 1) >= 0) return undefined;
  const segment = token.slice(first + 1, second);
  if (segment.length > MAX_CACHED_PAYLOAD) return decodedClaim(token, claim);
  const key = `${claim}.${segment}`;
  let value = roleClaims.get(key);
  if (value === undefined) {
    // "" stands for no usable claim (none, not a string, empty, or a payload that does not decode).
    value = decodedClaim(token, claim) ?? "";
    roleClaims.set(copied(key), copied(value));
  }
  return value === "" ? undefined : value;
}

/**
 * The same characters in a string of their own (V8's slices keep their whole
 * parent alive): written as JSON and read back, which keeps even a lone
 * surrogate as it was.
 */
const copied = (text: string): string => JSON.parse(JSON.stringify(text)) as string;

function decodedClaim(token: string, claim: string): string | undefined {
  try {
    const value = decodeJwt(token)[claim];
    return typeof value === "string" && value !== "" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The standard framing: database from the path, credentials from
 * `Authorization`: Basic (user and password) or Bearer (a token: the role
 * is its role claim, or the configured default role).
 */
export function identifyCaller(peer: PeerInfo, database: string, authorization: string | undefined, settings: CallerSettings): Caller {
  // A certificate that failed verification ends the request before anything is read from it or beside it.
  provenCertificate(peer);
  const token = decodeBearer(authorization);
  let user: string | undefined;
  let password: string | undefined;
  if (token !== undefined) {
    const role = settings.bearerRole;
    user = (role && claimOf(token, role.claim)) ?? role?.fallback;
    if (user === undefined) {
      throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "no PostgreSQL user name specified", {
        hint: `The bearer token names no role (claim "${role?.claim ?? "role"}") and HBAGATE_OAUTH_DEFAULT_ROLE is not set.`,
      });
    }
  } else if (authorization !== undefined) {
    ({ user, password } = decodeBasic(authorization));
  } else {
    // No Authorization: a verified client certificate names the role by its CN (`curl --cert` and
    // nothing else); otherwise the anonymous user, for trust lines. The line still decides.
    const cert = peer.certificate;
    user = (cert?.verified ? cert.names.cn || undefined : undefined) ?? settings.anonymousUser;
  }
  if (user === undefined) {
    throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "no PostgreSQL user name specified", {
      hint: "Send Authorization: Basic with user and password, Bearer with a token, or a client certificate.",
    });
  }
  return callerFor(peer, database, user, [...(password === undefined ? [] : [{ kind: "password", password } as const]), ...(token === undefined ? [] : [{ kind: "bearer", token } as const])]);
}

/** Any framing, once it has named the database, the user and the credentials it decoded. */
export function callerFor(peer: PeerInfo, database: string, user: string, credentials: readonly Credential[], startup: StartupParameters = {}): Caller {
  checkName("user", user);
  checkName("database", database);
  const base = { database, user, ssl: peer.encrypted, replication: false };
  const certificate = provenCertificate(peer);
  if (peer.transport === "local") {
    const proven: Credential[] = peer.systemUser === undefined ? [] : [{ kind: "principal", name: peer.systemUser }];
    return { facts: { transport: "local", ...base }, credentials: [...credentials, ...proven, ...certificate], startup };
  }
  const address = peer.address === undefined ? undefined : clientAddress(peer.address);
  if (!address) throw gatewayError(SQLSTATE.internalError, "the client address is unknown");
  return { facts: { transport: "host", address, ...base }, credentials: [...credentials, ...certificate], startup };
}

/**
 * The verified certificate as a credential. One that failed verification ends
 * the request whatever the rules say: PostgreSQL, given a root store, aborts
 * the handshake of a client whose certificate does not verify, before any
 * pg_hba.conf line is consulted (only the absence of a certificate is left
 * to the line).
 */
function provenCertificate(peer: PeerInfo): Credential[] {
  const cert = peer.certificate;
  if (cert === undefined) return [];
  if (!cert.verified) {
    throw gatewayError(SQLSTATE.protocolViolation, "could not accept SSL connection: certificate verify failed", {
      detail: `The client certificate was refused: ${cert.reason}.`,
    });
  }
  return [{ kind: "certificate", names: cert.names }];
}
