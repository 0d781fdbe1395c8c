// Authentication options (NAME=VALUE after the method) with PostgreSQL's
// validation rules and messages (hba.c: parse_hba_auth_opt and the mandatory
// argument checks at the end of parse_hba_line), turned into the typed
// AuthMethod variants of rule.ts.
import { parseLdapUrl } from "./ldap-url.ts";
import type { AuthMethod, ConnectionType, LdapMode } from "./rule.ts";

/** Methods that parse in PostgreSQL but cannot be verified over HTTP. */
export const HTTP_IMPOSSIBLE = {
  gss: "no GSSAPI over HTTP",
  sspi: "no SSPI over HTTP",
  ident: "no ident service for HTTP clients",
  pam: "no PAM in the gateway",
  bsd: "no BSD authentication in the gateway",
  radius: "no RADIUS in the gateway",
} as const;

export const SUPPORTED_METHODS = ["trust", "reject", "password", "md5", "scram-sha-256", "ldap", "cert", "peer", "oauth"] as const;
export type SupportedMethod = (typeof SUPPORTED_METHODS)[number];

type ClientCert = "off" | "verify-ca" | "verify-full";

// LDAP_SCOPE_* values, because pg_hba_file_rules prints ldapscope as a number.
const SCOPE_NUMBER = { base: 0, one: 1, sub: 2 } as const;
const SCOPE_NAME = ["base", "one", "sub"] as const;

/** What the options of one line have said so far. */
export interface OptionDraft {
  readonly method: SupportedMethod;
  readonly type: ConnectionType;
  map?: string;
  /** cert lines imply verify-full (set after the options, as PostgreSQL does). */
  clientCert: ClientCert;
  /** What verify-full compares with the user: the certificate's CN (the default) or its whole subject DN. */
  clientName: "CN" | "DN";
  ldapServer?: string;
  ldapPort?: number;
  ldapScheme?: string;
  ldapTls: boolean;
  ldapPrefix?: string;
  ldapSuffix?: string;
  ldapBaseDn?: string;
  ldapBindDn?: string;
  ldapBindPassword?: string;
  ldapSearchAttribute?: string;
  ldapSearchFilter?: string;
  /** PostgreSQL resets this to subtree before every option, so only a trailing ldapurl's scope survives. */
  ldapScope: number;
  issuer?: string;
  scope?: string;
  validator?: string;
  delegateIdentMapping: boolean;
}

export function newDraft(method: SupportedMethod, type: ConnectionType): OptionDraft {
  return { method, type, clientCert: "off", clientName: "CN", ldapTls: false, ldapScope: 0, delegateIdentMapping: false };
}

function onlyFor(name: string, methods: string): string {
  return `authentication option "${name}" is only valid for authentication methods ${methods}`;
}

/** C atoi: leading blanks, a sign, digits; anything after is ignored. */
function atoi(text: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(text);
  return m ? parseInt(m[1]!, 10) : 0;
}

const LDAP_STRING_OPTIONS = {
  ldapserver: "ldapServer",
  ldapbinddn: "ldapBindDn",
  ldapbindpasswd: "ldapBindPassword",
  ldapsearchattribute: "ldapSearchAttribute",
  ldapsearchfilter: "ldapSearchFilter",
  ldapbasedn: "ldapBaseDn",
  ldapprefix: "ldapPrefix",
  ldapsuffix: "ldapSuffix",
} as const;

const OAUTH_STRING_OPTIONS = { issuer: "issuer", scope: "scope", validator: "validator" } as const;

/** Apply one NAME=VALUE; returns an error message or null. */
export function applyOption(d: OptionDraft, name: string, value: string): string | null {
  if (d.method === "ldap") d.ldapScope = SCOPE_NUMBER.sub;
  if (name === "map") {
    if (d.method !== "peer" && d.method !== "cert" && d.method !== "oauth") {
      return onlyFor("map", "ident, peer, gssapi, sspi, cert, and oauth");
    }
    d.map = value;
    return null;
  }
  if (name === "clientcert") {
    if (d.type !== "hostssl") return 'clientcert can only be configured for "hostssl" rows';
    if (value === "verify-full") d.clientCert = "verify-full";
    else if (value === "verify-ca") {
      if (d.method === "cert") return 'clientcert can only be set to "verify-full" when using "cert" authentication';
      d.clientCert = "verify-ca";
    } else return `invalid value for clientcert: "${value}"`;
    return null;
  }
  if (name === "clientname") {
    if (d.type !== "hostssl") return 'clientname can only be configured for "hostssl" rows';
    if (value !== "CN" && value !== "DN") return `invalid value for clientname: "${value}"`;
    d.clientName = value;
    return null;
  }
  if (name in LDAP_STRING_OPTIONS) {
    if (d.method !== "ldap") return onlyFor(name, "ldap");
    d[LDAP_STRING_OPTIONS[name as keyof typeof LDAP_STRING_OPTIONS]] = value;
    return null;
  }
  if (name === "ldapurl") {
    if (d.method !== "ldap") return onlyFor(name, "ldap");
    const parsed = parseLdapUrl(value);
    if ("error" in parsed) return parsed.error;
    const u = parsed.url;
    if (u.scheme !== "ldap" && u.scheme !== "ldaps") return `unsupported LDAP URL scheme: ${u.scheme}`;
    d.ldapScheme = u.scheme;
    if (u.host !== undefined) d.ldapServer = u.host;
    d.ldapPort = u.port;
    if (u.baseDn !== undefined) d.ldapBaseDn = u.baseDn;
    if (u.attribute !== undefined) d.ldapSearchAttribute = u.attribute;
    d.ldapScope = SCOPE_NUMBER[u.scope];
    if (u.filter !== undefined) d.ldapSearchFilter = u.filter;
    return null;
  }
  if (name === "ldaptls") {
    if (d.method !== "ldap") return onlyFor(name, "ldap");
    d.ldapTls = value === "1";
    return null;
  }
  if (name === "ldapscheme") {
    if (d.method !== "ldap") return onlyFor(name, "ldap");
    // PostgreSQL only logs this and keeps the line; a scheme that can never work is an error here.
    if (value !== "ldap" && value !== "ldaps") return `invalid ldapscheme value: "${value}"`;
    d.ldapScheme = value;
    return null;
  }
  if (name === "ldapport") {
    if (d.method !== "ldap") return onlyFor(name, "ldap");
    const port = atoi(value);
    // PostgreSQL only refuses 0; a port outside 1-65535 can never connect, so we refuse it too.
    if (port < 1 || port > 65535) return `invalid LDAP port number: "${value}"`;
    d.ldapPort = port;
    return null;
  }
  if (name in OAUTH_STRING_OPTIONS) {
    if (d.method !== "oauth") return onlyFor(name, "oauth");
    d[OAUTH_STRING_OPTIONS[name as keyof typeof OAUTH_STRING_OPTIONS]] = value;
    return null;
  }
  if (name === "delegate_ident_mapping") {
    if (d.method !== "oauth") return onlyFor(name, "oauth");
    d.delegateIdentMapping = value === "1";
    return null;
  }
  if (name === "krb_realm" || name === "include_realm") return onlyFor(name, "gssapi and sspi");
  if (name === "compat_realm" || name === "upn_username") return onlyFor(name, "sspi");
  if (name === "pamservice" || name === "pam_use_hostname") return onlyFor(name, "pam");
  if (["radiusservers", "radiussecrets", "radiusidentifiers", "radiusports"].includes(name)) {
    return onlyFor(name, "radius");
  }
  return `unrecognized authentication option name: "${name}"`;
}

function usableIssuer(issuer: string): boolean {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return false;
  }
  return url.protocol === "https:" && url.username === "" && url.password === "" && url.search === "" && url.hash === "" && !issuer.includes("#") && !issuer.includes("?");
}

function required(method: string, arg: string): string {
  return `authentication method "${method}" requires argument "${arg}" to be set`;
}

function ldapMode(d: OptionDraft): LdapMode | string {
  if (d.ldapPrefix !== undefined || d.ldapSuffix !== undefined) {
    if (
      d.ldapBaseDn !== undefined ||
      d.ldapBindDn !== undefined ||
      d.ldapBindPassword !== undefined ||
      d.ldapSearchAttribute !== undefined ||
      d.ldapSearchFilter !== undefined
    ) {
      return "cannot use ldapbasedn, ldapbinddn, ldapbindpasswd, ldapsearchattribute, ldapsearchfilter, or ldapurl together with ldapprefix";
    }
    return { kind: "simple-bind", prefix: d.ldapPrefix ?? "", suffix: d.ldapSuffix ?? "" };
  }
  if (d.ldapBaseDn === undefined) {
    return 'authentication method "ldap" requires argument "ldapbasedn", "ldapprefix", or "ldapsuffix" to be set';
  }
  if (d.ldapSearchAttribute !== undefined && d.ldapSearchFilter !== undefined) {
    return "cannot use ldapsearchattribute together with ldapsearchfilter";
  }
  return {
    kind: "search-bind",
    baseDn: d.ldapBaseDn,
    bindDn: d.ldapBindDn,
    bindPassword: d.ldapBindPassword,
    scope: SCOPE_NAME[d.ldapScope] ?? "sub",
    search:
      d.ldapSearchFilter !== undefined
        ? { kind: "filter", filter: d.ldapSearchFilter }
        : { kind: "attribute", attribute: d.ldapSearchAttribute ?? "uid" },
  };
}

/** The typed method, once every option has been applied. */
export function finishMethod(d: OptionDraft): AuthMethod | string {
  switch (d.method) {
    case "trust":
    case "reject":
    case "password":
    case "md5":
    case "scram-sha-256":
      return { name: d.method };
    case "cert":
    case "peer":
      return { name: d.method, map: d.map };
    case "ldap": {
      const mode = ldapMode(d);
      if (typeof mode === "string") return mode;
      const scheme = d.ldapScheme === "ldaps" ? "ldaps" : "ldap";
      return {
        name: "ldap",
        ldap: {
          servers: (d.ldapServer ?? "").split(" ").filter((s) => s !== ""),
          port: d.ldapPort,
          scheme,
          startTls: d.ldapTls,
          mode,
        },
      };
    }
    case "oauth": {
      if (d.scope === undefined) return required("oauth", "scope");
      if (d.issuer === undefined) return required("oauth", "issuer");
      // PostgreSQL hands the issuer to its client; hbagate fetches from it, so a line that can never
      // be used is an error at its line, not an 08001 on every request.
      if (!usableIssuer(d.issuer)) return `invalid value for issuer: "${d.issuer}": an https URL without credentials, query or fragment is required`;
      if (d.delegateIdentMapping && d.map !== undefined) {
        return "map cannot be used in combination with delegate_ident_mapping";
      }
      return {
        name: "oauth",
        map: d.map,
        oauth: { issuer: d.issuer, scope: d.scope, validator: d.validator, delegateIdentMapping: d.delegateIdentMapping },
      };
    }
    default: {
      const unreachable: never = d.method;
      return unreachable;
    }
  }
}

/** The options column of pg_hba_file_rules, in PostgreSQL's order; the LDAP bind password is masked. */
export function displayOptions(d: OptionDraft): string[] {
  const out: string[] = [];
  if (d.map !== undefined) out.push(`map=${d.map}`);
  if (d.clientCert !== "off") out.push(`clientcert=${d.clientCert}`);
  if (d.method === "ldap") {
    if (d.ldapServer !== undefined) out.push(`ldapserver=${d.ldapServer}`);
    if (d.ldapPort !== undefined) out.push(`ldapport=${d.ldapPort}`);
    if (d.ldapScheme !== undefined) out.push(`ldapscheme=${d.ldapScheme}`);
    if (d.ldapTls) out.push("ldaptls=true");
    if (d.ldapPrefix !== undefined) out.push(`ldapprefix=${d.ldapPrefix}`);
    if (d.ldapSuffix !== undefined) out.push(`ldapsuffix=${d.ldapSuffix}`);
    if (d.ldapBaseDn !== undefined) out.push(`ldapbasedn=${d.ldapBaseDn}`);
    if (d.ldapBindDn !== undefined) out.push(`ldapbinddn=${d.ldapBindDn}`);
    if (d.ldapBindPassword !== undefined) out.push("ldapbindpasswd=********");
    if (d.ldapSearchAttribute !== undefined) out.push(`ldapsearchattribute=${d.ldapSearchAttribute}`);
    if (d.ldapSearchFilter !== undefined) out.push(`ldapsearchfilter=${d.ldapSearchFilter}`);
    if (d.ldapScope !== 0) out.push(`ldapscope=${d.ldapScope}`);
  }
  if (d.method === "oauth") {
    if (d.issuer !== undefined) out.push(`issuer=${d.issuer}`);
    if (d.scope !== undefined) out.push(`scope=${d.scope}`);
    if (d.validator !== undefined) out.push(`validator=${d.validator}`);
    if (d.delegateIdentMapping) out.push("delegate_ident_mapping=true");
  }
  return out;
}
