// ldapurl (RFC 4516) as PostgreSQL reads it through OpenLDAP's ldap_url_parse:
// ldap[s]://host[:port][/basedn[?attributes[?scope[?filter]]]]. Only the first
// attribute is used; the default port follows the scheme.

export interface LdapUrl {
  readonly scheme: string;
  readonly host: string | undefined;
  readonly port: number;
  readonly baseDn: string | undefined;
  readonly attribute: string | undefined;
  readonly scope: "base" | "one" | "sub";
  readonly filter: string | undefined;
}

export type LdapUrlResult = { readonly url: LdapUrl } | { readonly error: string };

function decode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

export function parseLdapUrl(text: string): LdapUrlResult {
  const bad = (why: string): LdapUrlResult => ({ error: `could not parse LDAP URL "${text}": ${why}` });
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?]*)(?:\/([^?]*)(?:\?([^?]*)(?:\?([^?]*)(?:\?([^?]*)(?:\?(.*))?)?)?)?)?$/.exec(text.trim());
  if (!m) return bad("Bad parameter to an ldap routine");
  const scheme = m[1]!.toLowerCase();
  // libldap only knows its own schemes; PostgreSQL then refuses ldapi itself.
  if (scheme !== "ldap" && scheme !== "ldaps" && scheme !== "ldapi") return bad("Bad parameter to an ldap routine");
  const hostPort = m[2]!;
  let host: string | undefined;
  let port = scheme === "ldaps" ? 636 : 389;
  if (hostPort !== "") {
    const hp = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(hostPort);
    if (!hp) return bad("Bad parameter to an ldap routine");
    host = decode(hp[1]!.replace(/^\[|\]$/g, ""));
    if (host === undefined) return bad("Bad parameter to an ldap routine");
    if (hp[2] !== undefined && hp[2] !== "") {
      port = Number(hp[2]);
      if (port < 1 || port > 65535) return bad("Bad parameter to an ldap routine");
    }
    if (host === "") host = undefined;
  }
  const baseDn = m[3] !== undefined && m[3] !== "" ? decode(m[3]) : undefined;
  const attrs = m[4] !== undefined && m[4] !== "" ? decode(m[4]) : undefined;
  const scopeText = m[5] !== undefined && m[5] !== "" ? m[5].toLowerCase() : undefined;
  const filter = m[6] !== undefined && m[6] !== "" ? decode(m[6]) : undefined;
  // RFC 4516: an omitted scope is "base" (and PostgreSQL searches so).
  let scope: LdapUrl["scope"] = "base";
  if (scopeText !== undefined) {
    if (scopeText === "base") scope = "base";
    else if (scopeText === "one" || scopeText === "onelevel") scope = "one";
    else if (scopeText === "sub" || scopeText === "subtree") scope = "sub";
    else return bad("Bad parameter to an ldap routine");
  }
  return {
    url: {
      scheme,
      host,
      port,
      baseDn,
      attribute: attrs?.split(",")[0],
      scope,
      filter,
    },
  };
}
