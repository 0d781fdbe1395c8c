// The `ldap` method with ldapts, as PostgreSQL does it (PostgreSQL 18
// documentation, 20.10 "LDAP Authentication"; auth.c CheckLDAPAuth):
// simple bind as prefix + user + suffix, or search+bind (bind as ldapbinddn
// or anonymously, search for exactly one entry, bind as it).
//
// Where hbagate is stricter than PostgreSQL: the user name is DN-escaped in
// simple-bind mode (PostgreSQL splices it in verbatim) and filter-escaped in
// search+bind mode (after refusing the same characters PostgreSQL refuses);
// an unreachable LDAP service is "unavailable" (08001, HTTP 503, so clients
// retry) where PostgreSQL says 28000.
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { Client, escapeFilter, InvalidCredentialsError, ResultCodeError, BusyError, UnavailableError } from "ldapts";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { ldapFailed, refusedBy } from "./messages.ts";
import type { LdapOptions } from "../hba/rule.ts";
import { isSecretReference, parseSecretReference, selectValue } from "../secrets/reference.ts";
import type { BeforeBind, LdapAuthenticate, LdapLog, LdapSettings } from "./ldap-port.ts";


/** ldapbindpasswd as written, or the secret it refers to. */
async function bindPassword(value: string | undefined, settings: LdapSettings, log: LdapLog): Promise<string> {
  if (value === undefined) return "";
  if (!isSecretReference(value)) return value;
  try {
    if (!settings.readSecret) throw new Error("the secrets service is not configured (HBAGATE_SECRETS_REGION)");
    const ref = parseSecretReference(value);
    return selectValue(ref, await settings.readSecret(ref.secretId));
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    // A service password that cannot be had: the line cannot be used now; never a pass.
    log({ level: "error", msg: "ldapbindpasswd cannot be read", detail: (err as Error).message });
    throw unavailable();
  }
}


/** What the caller learns of an outage; which servers and why goes to the log only. */
function unavailable(): GatewayError {
  return gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "could not connect to the LDAP server", {
    hint: "The authentication service is unavailable; try again later.",
  });
}

/** RFC 4514 escaping of an attribute value inside a DN: the name can never add RDNs or attributes. */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/\0/g, "\\00");
  if (out.startsWith(" ") || out.startsWith("#")) out = `\\${out}`;
  // Judged on the name: `out` also ends in "\ " when a backslash (escaped) precedes a bare final
  // space. A name that is one space was escaped above, as a leading one.
  if (value.length > 1 && value.endsWith(" ")) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** The characters PostgreSQL refuses in a user name for search+bind (they would change the filter). */
export function hasFilterSpecials(user: string): boolean {
  return /[*()\\/\0]/.test(user);
}

/** An escaped value for an LDAP filter (RFC 4515). */
export function escapeFilterValue(value: string): string {
  return escapeFilter`${value}`;
}

function serverUrl(ldap: LdapOptions, host: string): string {
  const port = ldap.port ?? (ldap.scheme === "ldaps" ? 636 : 389);
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `${ldap.scheme}://${h}:${port}`;
}

function tlsOptions(settings: LdapSettings, host: string): ConnectionOptions {
  return {
    rejectUnauthorized: true,
    servername: /^[\d.]+$|:/.test(host) ? "" : host,
    ...(settings.caFile ? { ca: readFileSync(settings.caFile) } : {}),
  };
}

/** ResultCodeErrors are the server's answers; anything else means the service could not be used. */
function isServerAnswer(err: unknown): boolean {
  return err instanceof ResultCodeError && !(err instanceof BusyError) && !(err instanceof UnavailableError);
}

/** Marks a failure that means "this server could not be used", so the next one is tried. */
class ServerUnusable extends Error {}

function unusable(server: string, err: unknown): ServerUnusable {
  return new ServerUnusable(`${server}: ${err instanceof Error ? err.message : String(err)}`);
}

/** One complete attempt against one server; the client is always closed. */
async function attempt(ldap: LdapOptions, host: string, user: string, password: string, settings: LdapSettings, log: LdapLog, beforeBind: BeforeBind | undefined): Promise<void> {
  const server = serverUrl(ldap, host);
  const client = new Client({
    url: server,
    connectTimeout: settings.connectTimeoutMs,
    timeout: settings.operationTimeoutMs,
    // ldapts speaks TLS from the start whenever tlsOptions is given, so only for ldaps.
    ...(ldap.scheme === "ldaps" ? { tlsOptions: tlsOptions(settings, host) } : {}),
    strictDN: true,
  });
  // Run one LDAP operation: the server's answers are verdicts, anything else makes this server unusable.
  const op = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      if (!isServerAnswer(err)) throw unusable(server, err);
      if (!(err instanceof InvalidCredentialsError)) log({ level: "info", msg: `LDAP ${what} failed`, server, detail: (err as Error).message });
      throw refusedBy(ldapFailed(user), "ldap", err instanceof InvalidCredentialsError ? `the directory at ${server} refused the ${what} (invalid credentials)` : `LDAP ${what} at ${server} failed: ${(err as Error).message}`);
    }
  };
  try {
    // ldapts connects on the first operation, so a dead server shows here.
    if (ldap.startTls) await op("StartTLS", () => client.startTLS(tlsOptions(settings, host)));
    const mode = ldap.mode;
    let dn: string;
    if (mode.kind === "simple-bind") {
      dn = `${mode.prefix}${escapeDnValue(user)}${mode.suffix}`;
    } else {
      const servicePassword = await bindPassword(mode.bindPassword, settings, log);
      await op(`initial bind for ldapbinddn "${mode.bindDn ?? ""}"`, () => client.bind(mode.bindDn ?? "", servicePassword));
      const value = escapeFilterValue(user);
      const filter =
        mode.search.kind === "filter" ? mode.search.filter.replaceAll("$username", value) : `(${mode.search.attribute}=${value})`;
      const { searchEntries } = await op("search", () =>
        client.search(mode.baseDn, { scope: mode.scope, filter, attributes: ["1.1"], sizeLimit: 2 }),
      );
      if (searchEntries.length !== 1) {
        const what = searchEntries.length === 0 ? "does not exist" : "is not unique";
        log({ level: "info", msg: `LDAP user "${user}" ${what}`, server, detail: `search filter "${filter}" returned ${searchEntries.length === 0 ? "no entries" : "more than one entry"}` });
        throw refusedBy(ldapFailed(user), "ldap", `LDAP user "${user}" ${what} at ${server}`);
      }
      dn = searchEntries[0]!.dn;
    }
    await beforeBind?.(dn);
    await op("login", () => client.bind(dn, password));
  } finally {
    await client.unbind().catch(() => {});
  }
}


/**
 * Verify `user`/`password` against the rule's LDAP options. Resolves on
 * success; throws 28000 for wrong or unknown credentials (the same answer)
 * and 08001 when no listed LDAP server could be used (tried in order). Every
 * connection is closed, whatever happens.
 */
export const authenticateLdap: LdapAuthenticate = async (ldap, user, password, settings, log, beforeBind) => {
  // An empty password would be an anonymous bind, which "succeeds": never.
  if (password === "") throw refusedBy(ldapFailed(user), "ldap", "an empty password is refused before any check");
  if (ldap.mode.kind === "search-bind" && hasFilterSpecials(user)) {
    log({ level: "info", msg: "invalid character in user name for LDAP authentication" });
    throw refusedBy(ldapFailed(user), "ldap", "invalid character in user name for LDAP authentication");
  }
  if (ldap.servers.length === 0) {
    log({ level: "error", msg: "no ldapserver is configured for this line" });
    throw unavailable();
  }
  const reasons: string[] = [];
  for (const host of ldap.servers) {
    try {
      return await attempt(ldap, host, user, password, settings, log, beforeBind);
    } catch (err) {
      if (!(err instanceof ServerUnusable)) throw err;
      log({ level: "warn", msg: "LDAP server could not be used", detail: err.message });
      reasons.push(err.message);
    }
  }
  log({ level: "error", msg: "no LDAP server could be used", detail: reasons.join("; ") });
  throw unavailable();
};
