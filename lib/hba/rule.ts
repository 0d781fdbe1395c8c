// The parsed, immutable form of a pg_hba.conf line. Everything a login needs is
// decided here, at load time; nothing is re-parsed per request.
import type { IpAddress } from "./address.ts";

export const CONNECTION_TYPES = ["local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

/** A compiled entry of the database or user field; `text` is the token as pg_hba_file_rules shows it. */
export type NameMatcher =
  | { readonly kind: "all"; readonly text: string }
  | { readonly kind: "sameuser"; readonly text: string }
  | { readonly kind: "samerole"; readonly text: string }
  | { readonly kind: "replication"; readonly text: string }
  | { readonly kind: "member"; readonly text: string; readonly role: string }
  | { readonly kind: "regex"; readonly text: string; readonly regex: RegExp }
  | { readonly kind: "name"; readonly text: string };

export type AddressMatcher =
  | { readonly kind: "all" }
  | { readonly kind: "samehost" }
  | { readonly kind: "samenet" }
  | { readonly kind: "cidr"; readonly network: IpAddress; readonly mask: IpAddress }
  | { readonly kind: "hostname"; readonly name: string };

export type LdapSearch =
  | { readonly kind: "attribute"; readonly attribute: string }
  | { readonly kind: "filter"; readonly filter: string };

export type LdapMode =
  | { readonly kind: "simple-bind"; readonly prefix: string; readonly suffix: string }
  | {
      readonly kind: "search-bind";
      readonly baseDn: string;
      readonly bindDn: string | undefined;
      readonly bindPassword: string | undefined;
      readonly scope: "base" | "one" | "sub";
      readonly search: LdapSearch;
    };

export interface LdapOptions {
  /** Servers to try in order (ldapserver is a space-separated list). */
  readonly servers: readonly string[];
  readonly port: number | undefined;
  readonly scheme: "ldap" | "ldaps";
  /** StartTLS (ldaptls=1). */
  readonly startTls: boolean;
  readonly mode: LdapMode;
}

export interface OAuthOptions {
  readonly issuer: string;
  readonly scope: string;
  readonly validator: string | undefined;
  readonly delegateIdentMapping: boolean;
}

/** Methods hbagate can verify over HTTP, one variant each with exactly its settings. */
export type AuthMethod =
  | { readonly name: "trust" }
  | { readonly name: "reject" }
  | { readonly name: "password" }
  | { readonly name: "md5" }
  | { readonly name: "scram-sha-256" }
  | { readonly name: "ldap"; readonly ldap: LdapOptions }
  | { readonly name: "cert"; readonly map: string | undefined }
  | { readonly name: "peer"; readonly map: string | undefined }
  | { readonly name: "oauth"; readonly map: string | undefined; readonly oauth: OAuthOptions };

export type MethodName = AuthMethod["name"];

/**
 * A client certificate the line demands on top of its method (PostgreSQL
 * "Client Certificate Authentication", 19.3 hba options `clientcert`,
 * `clientname`).
 */
export interface ClientCertRequirement {
  /** verify-ca: a certificate the trusted CA vouches for; verify-full: and its name is the user, or maps to it. */
  readonly verify: "verify-ca" | "verify-full";
  /** What verify-full compares: the subject's CN, or the whole subject DN in RFC 2253 form. */
  readonly name: "CN" | "DN";
}

export interface HbaRule {
  readonly file: string;
  readonly line: number;
  readonly raw: string;
  /** 1-based position among valid rules, as pg_hba_file_rules.rule_number. */
  readonly ruleNumber: number;
  readonly type: ConnectionType;
  readonly databases: readonly NameMatcher[];
  readonly users: readonly NameMatcher[];
  /** null for `local` lines. */
  readonly address: AddressMatcher | null;
  /** Everything a rule demands is in here and enforced. */
  readonly method: AuthMethod;
  /** clientcert= (hostssl lines; every cert line is verify-full), with clientname=; undefined: no certificate needed. */
  readonly clientCert: ClientCertRequirement | undefined;
  /** Options as pg_hba_file_rules prints them (secrets masked). */
  readonly options: readonly string[];
}

export interface HbaError {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** A whole file: valid only when `errors` is empty (PostgreSQL rejects the file on any bad line). */
export interface HbaFile {
  readonly path: string;
  readonly rules: readonly HbaRule[];
  /**
   * Every line's error, in order; or, when there is no line at all, the one
   * file-level error "contains no entries" at line 1 (not among `entries`).
   */
  readonly errors: readonly HbaError[];
  /** Every line in file order, for the pg_hba_file_rules view. */
  readonly entries: readonly ({ readonly rule: HbaRule } | { readonly error: HbaError })[];
}
