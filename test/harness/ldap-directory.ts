// The directory the throwaway slapd serves: PostgreSQL's own LDAP test data
// (authdata.ldif from src/test/ldap: dc=example,dc=net with uid=test1 and
// uid=test2 directly under it) plus entries for the gateway's own tests: two
// users sharing one mail value, a user whose uid needs DN escaping, and a
// search service account. Names, passwords and the LDIF slapadd loads.
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

/** PostgreSQL's LDAP test directory (src/test/ldap/authdata.ldif), in shared/ beside the checkout. */
export const AUTHDATA_LDIF = fileURLToPath(new URL("../../../shared/corpora/postgres/authdata.ldif", import.meta.url));

export const BASE_DN = "dc=example,dc=net";
export const ADMIN_DN = `cn=admin,${BASE_DN}`;
export const ADMIN_PASSWORD = "adminpw";
export const SEARCH_DN = `cn=search,${BASE_DN}`;
export const SEARCH_PASSWORD = "searchpw";
/** The mail value shared by users dup1 and dup2. */
export const DUP_MAIL = "dup@example.net";

export interface LdapUser {
  /** The uid attribute value, i.e. the name a client would log in with. */
  readonly uid: string;
  /** The entry's DN, escaped as RFC 4514 requires. */
  readonly dn: string;
  readonly password: string;
  readonly mail: string;
  readonly cn: string;
}

export type LdapUserKey = "test1" | "test2" | "dup1" | "dup2" | "special";

/** The uid of the `special` user: a comma, a plus, double quotes, an apostrophe and a space,
 * all legal in a search filter unescaped but needing escapes in a DN. */
export const SPECIAL_UID = `o'brien, "jr"+x`;

export const LDAP_USERS: Readonly<Record<LdapUserKey, LdapUser>> = {
  // From authdata.ldif; passwords as PostgreSQL's 001_auth.pl sets them.
  test1: { uid: "test1", dn: `uid=test1,${BASE_DN}`, password: "secret1", mail: "test1@example.net", cn: "First Test User" },
  test2: { uid: "test2", dn: `uid=test2,${BASE_DN}`, password: "secret2", mail: "test2@example.net", cn: "Second Test User" },
  // Added here: two users with the same mail, for "search found more than one entry".
  dup1: { uid: "dup1", dn: `uid=dup1,${BASE_DN}`, password: "dupsecret1", mail: DUP_MAIL, cn: "Duplicate One" },
  dup2: { uid: "dup2", dn: `uid=dup2,${BASE_DN}`, password: "dupsecret2", mail: DUP_MAIL, cn: "Duplicate Two" },
  special: {
    uid: SPECIAL_UID,
    dn: `uid=o'brien\\, \\"jr\\"\\+x,${BASE_DN}`,
    password: "sp3cial",
    mail: "obrien@example.net",
    cn: "Special Characters",
  },
};

/** `{SSHA}` as slappasswd makes it: base64(SHA1(password + salt) + salt). */
export function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash("sha1").update(password, "utf8").update(salt).digest();
  return "{SSHA}" + Buffer.concat([digest, salt]).toString("base64");
}

function extraLdif(): string {
  const person = (u: LdapUser, uidNumber: number) =>
    [
      `dn: ${u.dn}`,
      "objectClass: inetOrgPerson",
      "objectClass: posixAccount",
      `uid: ${u.uid}`,
      "sn: Lastname",
      `cn: ${u.cn}`,
      `uidNumber: ${uidNumber}`,
      "gidNumber: 100",
      `homeDirectory: /home/user${uidNumber}`,
      `mail: ${u.mail}`,
      `userPassword: ${ssha(u.password)}`,
      "",
    ].join("\n");
  return [
    person(LDAP_USERS.dup1, 201),
    person(LDAP_USERS.dup2, 202),
    person(LDAP_USERS.special, 203),
    [
      `dn: ${SEARCH_DN}`,
      "objectClass: organizationalRole",
      "objectClass: simpleSecurityObject",
      "cn: search",
      "description: service account for search+bind",
      `userPassword: ${ssha(SEARCH_PASSWORD)}`,
      "",
    ].join("\n"),
  ].join("\n");
}

/** authdata.ldif with userPassword added to test1 and test2. */
async function authdataLdif(): Promise<string> {
  const text = await readFile(AUTHDATA_LDIF, "utf8");
  const entries = text.replace(/\r\n/g, "\n").split(/\n\s*\n/).map((e) => e.trim()).filter((e) => e !== "");
  return entries
    .map((entry) => {
      const dn = entry.match(/^dn:\s*(.*)$/m)?.[1]?.trim();
      const user = Object.values(LDAP_USERS).find((u) => u.dn === dn);
      return user ? `${entry}\nuserPassword: ${ssha(user.password)}\n` : `${entry}\n`;
    })
    .join("\n");
}

/** Everything slapadd loads: authdata.ldif with passwords, then the entries added here. */
export async function directoryLdif(): Promise<string> {
  return (await authdataLdif()) + "\n" + extraLdif();
}
