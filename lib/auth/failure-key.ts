// Who the brute-force brake counts failures against: the identity the
// verifier actually compares, so that spellings the verifier treats as one
// name share one record. The key is known before any verifier is contacted
// (the lock is checked first), so it depends only on the rule's method and
// the user name.
//
// Normalising more than the verifier does only widens a lock (two names share
// it); normalising less would let a caller keep guessing under another
// spelling. Where in doubt, these functions equate more.
import type { AuthMethod, HbaRule } from "../hba/rule.ts";
import type { ConnectionFacts } from "../hba/match.ts";
import { formatAddress } from "../hba/address.ts";

/**
 * A name as LDAP's caseIgnoreMatch compares it (RFC 4518 string preparation,
 * which OpenLDAP applies to uid and to DN values): compatibility-normalised
 * (NFKC: "ｔｅｓｔ１" and "test①" are test1 to slapd), case-folded, characters
 * mapped to nothing dropped, every kind of space and line break one space,
 * runs of spaces one, none at either end. Tab and newline count as spaces
 * because slapd's DN parser trims them around a simple-bind value.
 */
export function ldapNameKey(name: string): string {
  return (
    name
      .normalize("NFKC")
      .replace(/[\t\n\v\f\r\u0085\u2028\u2029\p{Zs}]/gu, " ")
      // RFC 4518 2.2 maps controls, soft hyphens, joiners and variation selectors to nothing.
      .replace(/[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]/gu, "")
      // No case folding in JavaScript: upper then lower folds "ß"/"SS" and final sigma alike.
      .toUpperCase()
      .toLowerCase()
      .normalize("NFKC")
      .replace(/ {2,}/g, " ")
      .trim()
  );
}

const utf8 = new TextEncoder();

/** Bytes of an RFC 4514 value: "\2C" and "\," are the same comma, "\C3\A9" one é. */
function unescapeDnValue(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\\" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === "\\" && i + 1 < text.length) {
      bytes.push(...utf8.encode(text[++i]!));
    } else {
      const cp = text.codePointAt(i)!;
      if (cp > 0xffff) i++;
      bytes.push(...utf8.encode(String.fromCodePoint(cp)));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Split at unescaped separators. */
function splitDn(text: string, separators: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (separators.includes(text[i]!)) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/**
 * A DN as the directory compares it: attribute types case-insensitive, values
 * unescaped and compared as ldapNameKey does. The DN a search returns
 * (`uid=o'brien\2C \22jr\22\2Bx,…`) and the one simple bind builds
 * (`uid=o'brien\, \"jr\"\+x,…`) give the same key.
 */
export function ldapDnKey(dn: string): string {
  const rdns = splitDn(dn, ",;").map((rdn) =>
    splitDn(rdn, "+")
      .map((ava) => {
        const eq = ava.indexOf("=");
        if (eq < 0) return [ldapNameKey(ava)];
        // Untrimmed: a trailing "\ " is an escaped space (ldapNameKey drops it after unescaping).
        const value = ava.slice(eq + 1);
        const type = ava.slice(0, eq).trim().toLowerCase();
        // "#…" is a hex-encoded BER value: compared as written, whatever the case.
        if (value.trimStart().startsWith("#")) return [type, value.trim().toLowerCase()];
        return [type, ldapNameKey(unescapeDnValue(value))];
      })
      .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
  );
  return JSON.stringify(["ldap-dn", rdns]);
}

/**
 * The failure key for `user` under `rule`. LDAP: the name as the directory
 * compares it (one key for every LDAP line, simple bind or search+bind).
 * Everything else: the role name exactly, as PostgreSQL compares role names
 * once past the SQL parser ("Alice" and "alice" are two roles); the caller
 * layer has already refused NUL bytes and names PostgreSQL would truncate.
 */
export function failureKeyFor(rule: Pick<HbaRule, "method">, user: string): string {
  const method: AuthMethod = rule.method;
  switch (method.name) {
    case "ldap":
      return JSON.stringify(["ldap", ldapNameKey(user)]);
    case "trust":
    case "reject":
    case "password":
    case "md5":
    case "scram-sha-256":
    case "peer":
    case "cert":
    case "oauth":
      return JSON.stringify(["role", user]);
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}

/**
 * Whether the brute-force brake applies to this rule at all: to lines that
 * check something a caller could guess. A bearer token's signature cannot be
 * guessed, and counting refused tokens would only let anyone who can name a
 * role lock out every end user of it behind the same address.
 */
export function brakeApplies(rule: Pick<HbaRule, "method">): boolean {
  const method: AuthMethod = rule.method;
  switch (method.name) {
    case "oauth":
      return false;
    case "trust":
    case "reject":
    case "password":
    case "md5":
    case "scram-sha-256":
    case "ldap":
    case "peer":
    case "cert":
      return true;
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}

/**
 * Whether a success on this rule may clear the identity's failures: only one
 * that checked a secret of the kind the failures guessed at. A `trust` or
 * `peer` line for the same role proves no password, and were it to clear the
 * record, alternating with it would make guessing free.
 */
export function successClearsFailures(rule: Pick<HbaRule, "method">): boolean {
  const method: AuthMethod = rule.method;
  switch (method.name) {
    case "password":
    case "md5":
    case "scram-sha-256":
    case "ldap":
      return true;
    case "trust":
    case "reject":
    case "peer":
    case "cert":
    case "oauth":
      return false;
    default: {
      const unreachable: never = method;
      throw unreachable;
    }
  }
}

/**
 * The client as the brake counts it: an IPv4 address, or an IPv6 /64. One
 * IPv6 client usually holds a whole /64 and could otherwise take a fresh
 * address (and a fresh record) for every guess.
 */
export function failureAddressFor(facts: Pick<ConnectionFacts, "transport" | "address">): string {
  const a = facts.address;
  if (facts.transport === "local" || !a) return "[local]";
  if (a.family === 4) return formatAddress(a);
  const prefix = new Uint8Array(16);
  prefix.set(a.bytes.subarray(0, 8));
  return `${formatAddress({ family: 6, bytes: prefix })}/64`;
}
