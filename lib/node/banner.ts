// What `hbagate start` tells whoever started it: the address and a curl to try,
// with -u when the line a request from this machine meets checks a password.
import { parseClientAddress } from "../hba/address.ts";
import type { ConnectionFacts } from "../hba/match.ts";

/** The role and method a credential-less request meets (AssembledGateway.methodFor). */
export type Access = { readonly user: string | undefined; readonly method: string | null } | undefined;

/** The connection facts of a request from this machine to `url` (the TCP listener's). */
export function localFactsFor(url: string): Omit<ConnectionFacts, "user" | "replication"> | undefined {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  // A wildcard listener is reached from here on loopback.
  const address = parseClientAddress(host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host);
  if (!address) return undefined;
  return { transport: "host", address, ssl: u.protocol === "https:", database: "postgres" };
}

/** The curl the start prints: with `-u ROLE:PASSWORD` unless the request would be let in without one. */
export function tryCurl(url: string, access: Access): string {
  const needsCredentials = access === undefined || access.user === undefined || access.method !== "trust";
  const auth = needsCredentials ? ` -u ${access?.user ?? "ROLE"}:PASSWORD` : "";
  return `curl -s${auth} ${url}/v1/postgres/sql -H 'content-type: application/json' -d '{"query":"select $1::int + 1 as answer","params":[41]}'`;
}
