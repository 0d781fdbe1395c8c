// The Neon framing: credentials and database in a `Neon-Connection-String`
// header (postgresql://user:password@host/database?params). The host part is
// never used to pick an upstream: a caller cannot redirect the gateway.
import { gatewayError, SQLSTATE } from "../errors.ts";

export interface NeonTarget {
  readonly user: string;
  readonly password: string | undefined;
  readonly database: string;
  /** Startup parameters from the query string (application_name, options, …). */
  readonly parameters: Readonly<Record<string, string>>;
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw gatewayError(SQLSTATE.protocolViolation, `invalid Neon-Connection-String: the ${what} is not valid percent-encoding`);
  }
}

export function parseNeonConnectionString(header: string | undefined): NeonTarget {
  if (header === undefined) {
    throw gatewayError(SQLSTATE.protocolViolation, "missing Neon-Connection-String header", {
      hint: "Send Neon-Connection-String: postgresql://user:password@host/database",
    });
  }
  let url: URL;
  try {
    url = new URL(header);
  } catch {
    throw gatewayError(SQLSTATE.protocolViolation, "invalid Neon-Connection-String: not a URL");
  }
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw gatewayError(SQLSTATE.protocolViolation, "invalid Neon-Connection-String: the scheme must be postgresql:// or postgres://");
  }
  const user = decode(url.username, "user name");
  const database = decode(url.pathname.replace(/^\//, ""), "database name");
  if (user === "") throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "no PostgreSQL user name specified");
  if (database === "") throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, "no PostgreSQL database name specified");
  const parameters: Record<string, string> = {};
  for (const [k, v] of url.searchParams) parameters[k] = v;
  return { user, password: url.password === "" ? undefined : decode(url.password, "password"), database, parameters: Object.freeze(parameters) };
}
