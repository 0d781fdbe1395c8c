// LDAP as the gateway core sees it: the settings every line shares and the
// directory client, a port (the Node platform's is ldap.ts, over ldapts; a
// runtime without TCP clients has none, and ldap lines then cannot be used).
import type { LdapOptions } from "../hba/rule.ts";

export interface LdapSettings {
  /** Milliseconds to open the TCP (and TLS) connection to one server. */
  readonly connectTimeoutMs: number;
  /** Milliseconds for each LDAP operation (bind, search, StartTLS). */
  readonly operationTimeoutMs: number;
  /** PEM CA bundle for ldaps and StartTLS; default: Node's bundled roots. Verification is always on. */
  readonly caFile: string | undefined;
  /** Reads a secret, for `ldapbindpasswd=secretsmanager:…`. */
  readonly readSecret?: (secretId: string) => Promise<string>;
}

export type LdapLog = (event: { level: string; msg: string; server?: string; detail?: string }) => void;

/**
 * Called with the DN about to be bound with the caller's password, before the
 * bind; throwing stops the login there. A search+bind name is only one way to
 * an entry (a filter may also take its mail), so the brute-force brake counts
 * the DN as well.
 */
export type BeforeBind = (dn: string) => void | Promise<void>;

/**
 * Verify `user`/`password` against the rule's LDAP options. Resolves on
 * success; throws 28000 for wrong or unknown credentials (the same answer)
 * and 08001 when no listed LDAP server could be used.
 */
export type LdapAuthenticate = (ldap: LdapOptions, user: string, password: string, settings: LdapSettings, log: LdapLog, beforeBind?: BeforeBind) => Promise<void>;

export interface LdapPort extends LdapSettings {
  /** The directory client; undefined where the runtime has none. */
  readonly authenticate: LdapAuthenticate | undefined;
}
