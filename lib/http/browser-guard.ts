// Browser safety: what keeps a web page the user happens to visit from using
// the gateway through the user's browser (and so from the user's address,
// which `trust` lines may believe). Checked before any authentication or body
// reading:
//
// - Host: the name the browser used must be ours, so DNS rebinding (an
//   attacker's name re-pointed at the gateway's address) finds nothing. IP
//   addresses, `localhost` and `*.localhost` are always ours: rebinding needs
//   a DNS name the attacker controls, and browsers resolve `localhost` names to
//   loopback themselves (RFC 6761). Other names must be listed.
// - Origin: a browser names the page that sends a request in `Origin` (on every
//   POST, same-origin too); a page not listed in HBAGATE_CORS_ORIGINS is
//   refused, whether or not it needed a preflight. Requests without Origin
//   (curl, servers, Neon's Node driver) are not from a browser page.
// - Content-Type: JSON only, so a browser cannot send a request body without
//   a CORS preflight (text/plain, forms and multipart are "simple" requests).
import type { Context, MiddlewareHandler } from "hono";
import { gatewayError, SQLSTATE } from "../errors.ts";

/** Host names the gateway answers to besides IP addresses and localhost names. */
export interface AllowedHosts {
  /** `*`: any Host at all (no check). */
  readonly any: boolean;
  readonly names: ReadonlySet<string>;
  /** From `*.example.com`: ".example.com", matching any name below it (not the name itself). */
  readonly suffixes: readonly string[];
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;

/** A DNS name, lowercase, one trailing dot removed ("localhost." is "localhost"); undefined if it is not one. */
function dnsName(text: string): string | undefined {
  const name = (text.endsWith(".") ? text.slice(0, -1) : text).toLowerCase();
  if (name.length === 0 || name.length > 253) return undefined;
  return name.split(".").every((l) => LABEL.test(l)) ? name : undefined;
}

/** An IPv6 literal in brackets that parses as one (no zone: browsers send none). */
function ipv6Literal(text: string): boolean {
  if (!IPV6.test(text)) return false;
  try {
    new URL(`http://${text}/`);
    return true;
  } catch {
    return false;
  }
}

/**
 * The host in a Host (or X-Forwarded-Host) value, `name[:port]` or
 * `[v6][:port]`: lowercase, without its port or trailing dot. Undefined when
 * it is not exactly one such host (two Host headers arrive joined by a comma).
 */
export function hostOf(value: string): string | undefined {
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::\d{1,5})?$/.exec(value.trim());
  if (!m) return undefined;
  const host = m[1]!.toLowerCase();
  if (host.startsWith("[")) return ipv6Literal(host) ? host : undefined;
  const name = dnsName(host);
  return name !== undefined && /^[\d.]+$/.test(name) && !IPV4.test(name) ? undefined : name;
}

/** Always allowed: IP addresses and the names browsers keep on loopback. */
function alwaysOurs(host: string): boolean {
  return host.startsWith("[") || IPV4.test(host) || host === "localhost" || host.endsWith(".localhost");
}

export function hostAllowed(allowed: AllowedHosts, host: string): boolean {
  if (allowed.any || alwaysOurs(host) || allowed.names.has(host)) return true;
  for (const s of allowed.suffixes) if (host.endsWith(s)) return true;
  return false;
}

/** HBAGATE_ALLOWED_HOSTS: "*", or comma-separated names and `*.suffix` patterns (any port). Throws naming the bad entry. */
export function parseAllowedHosts(text: string): AllowedHosts {
  const names = new Set<string>();
  const suffixes: string[] = [];
  let any = false;
  for (const entry of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (entry === "*") {
      any = true;
      continue;
    }
    const wildcard = entry.startsWith("*.");
    const name = dnsName(wildcard ? entry.slice(2) : entry);
    if (name === undefined) throw new Error(`invalid allowed host "${entry}": expected a host name (no scheme or port: any port is allowed), "*.example.com" or "*"`);
    if (wildcard) suffixes.push(`.${name}`);
    else names.add(name);
  }
  return Object.freeze({ any, names, suffixes: Object.freeze(suffixes) });
}

/**
 * HBAGATE_CORS_ORIGINS: "*", or comma-separated origins (scheme://host[:port],
 * any scheme: apps in capacitor:// or tauri:// have origins too), normalised as
 * browsers send them. Throws naming the bad entry.
 */
export function parseCorsOrigins(text: string): readonly string[] {
  const out: string[] = [];
  for (const entry of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (entry === "*") {
      out.push(entry);
      continue;
    }
    if (entry === "null") throw new Error(`origin "null" cannot be allowed: sandboxed frames, files and redirects all send it, so it names no one`);
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    if (!url || url.host === "" || url.username !== "" || url.password !== "" || !["", "/"].includes(url.pathname) || url.search !== "" || url.hash !== "") {
      throw new Error(`invalid origin "${entry}": expected scheme://host[:port] (no path), or "*"`);
    }
    out.push(`${url.protocol}//${url.host}`);
  }
  return Object.freeze(out);
}

export interface BrowserPolicy {
  /** From HBAGATE_CORS_ORIGINS; ["*"] lets any origin through. */
  readonly origins: readonly string[];
  readonly hosts: AllowedHosts;
  /** X-Forwarded-Host entries when a trusted proxy sent them (the names its client used), else undefined. */
  forwardedHosts(c: Context): readonly string[] | undefined;
}

/** The host of an absolute URL (the request's, as the runtime built it). */
function urlAuthority(url: string): string {
  const start = url.indexOf("//") + 2;
  let end = start;
  while (end < url.length && url[end] !== "/" && url[end] !== "?" && url[end] !== "#") end++;
  return url.slice(start, end);
}

const refusedHost = (value: string) =>
  gatewayError(SQLSTATE.invalidAuthorizationSpecification, `host "${value}" is not allowed`, {
    hint: "Requests by IP address, localhost and *.localhost are accepted; add the names clients use to HBAGATE_ALLOWED_HOSTS.",
  });

/** Refuses, by throwing, a request for a host that is not ours or from an origin that is not allowed. */
export function browserGuard(policy: BrowserPolicy): MiddlewareHandler {
  const anyOrigin = policy.origins.includes("*");
  const origins = new Set(policy.origins);
  // Clients send a handful of distinct Host values: each is judged once (bounded, forgotten whole when full).
  const judged = new Map<string, boolean>();
  const checkHost = (value: string) => {
    let ok = judged.get(value);
    if (ok === undefined) {
      const host = hostOf(value);
      ok = host !== undefined && hostAllowed(policy.hosts, host);
      if (judged.size >= 1024) judged.clear();
      judged.set(value, ok);
    }
    if (!ok) throw refusedHost(value);
  };
  return async (c, next) => {
    if (!policy.hosts.any) {
      const forwarded = policy.forwardedHosts(c);
      if (forwarded) {
        // A trusted proxy's client named these; the Host it sent us is its own choice.
        for (const value of forwarded) checkHost(value);
      } else {
        // The URL's host differs from Host only for an absolute-form request target; both must be ours.
        const host = c.req.header("host");
        const authority = urlAuthority(c.req.url);
        if (host !== undefined) checkHost(host);
        if (host === undefined || authority.toLowerCase() !== host.trim().toLowerCase()) checkHost(authority);
      }
    }
    if (!anyOrigin) {
      const origin = c.req.header("origin");
      if (origin !== undefined && !origins.has(origin)) {
        throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, `origin "${origin}" is not allowed`, {
          hint: "Browser pages may call the gateway only from origins listed in HBAGATE_CORS_ORIGINS.",
        });
      }
    }
    await next();
  };
}

/**
 * Refuses, by throwing, a body whose Content-Type is not one of `accepted`
 * (parameters other than a UTF-8 charset are ignored; JSON is UTF-8).
 */
export function requireContentType(value: string | undefined, accepted: readonly string[]): void {
  const expected = accepted.join(" or ");
  if (value === undefined) throw unsupported("missing Content-Type", expected);
  const [type = "", ...params] = value.split(";");
  if (!accepted.includes(type.trim().toLowerCase())) throw unsupported(`unsupported Content-Type "${value}"`, expected);
  for (const p of params) {
    const [k = "", v = ""] = p.split("=");
    if (k.trim().toLowerCase() === "charset" && v.trim().replace(/^"(.*)"$/, "$1").toLowerCase() !== "utf-8") {
      throw unsupported(`unsupported charset in Content-Type "${value}"`, `${expected} in UTF-8`);
    }
  }
}

const unsupported = (message: string, expected: string) =>
  gatewayError(SQLSTATE.badCopyFileFormat, `${message}: the request body must be ${expected}`, {
    hint: "Send Content-Type: application/json.",
  });
