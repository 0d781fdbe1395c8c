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
