// Who is calling: the transport facts the adapter saw, the database in the
// URL, and the credentials in the Authorization header. Nothing here trusts
// a header that a client could forge.
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
}

export interface Caller {
  readonly facts: ConnectionFacts;
  /** The caller's password, when one was sent. Never logged. */
  readonly password: string | undefined;
  /** Startup parameters for the upstream session (application_name, options). */
  readonly startup: StartupParameters;
  /** The platform-verified identity of a local connection, for `peer`. */
  readonly systemUser: string | undefined;
}

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

function decodeBasic(header: string): { user: string; password: string } {
  const m = /^Basic[ ]+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) throw gatewayError(SQLSTATE.protocolViolation, "malformed Authorization header: expected Basic credentials");
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
}

/** The standard framing: database from the path, credentials from `Authorization: Basic`. */
export function identifyCaller(peer: PeerInfo, database: string, authorization: string | undefined, settings: CallerSettings): Caller {
  let user: string | undefined;
  let password: string | undefined;
  if (authorization !== undefined) {
    ({ user, password } = decodeBasic(authorization));
  } else {
    user = settings.anonymousUser;
  }
  if (user === undefined) {
    throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "no PostgreSQL user name specified", {
      hint: "Send Authorization: Basic with user and password.",
    });
  }
  return callerFor(peer, database, user, password);
}

/** Any framing, once it has named the database, the user and maybe a password. */
export function callerFor(peer: PeerInfo, database: string, user: string, password: string | undefined, startup: StartupParameters = {}): Caller {
  checkName("user", user);
  checkName("database", database);
  const base = { database, user, ssl: peer.encrypted, replication: false };
  if (peer.transport === "local") return { facts: { transport: "local", ...base }, password, startup, systemUser: peer.systemUser };
  const address = peer.address === undefined ? undefined : clientAddress(peer.address);
  if (!address) throw gatewayError(SQLSTATE.internalError, "the client address is unknown");
  return { facts: { transport: "host", address, ...base }, password, startup, systemUser: undefined };
}
