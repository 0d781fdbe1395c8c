// Failure keys: one key per identity the verifier compares. The LDAP spellings
// below are the ones a real slapd accepted as uid=test1 (simple bind and
// search); test/auth/failure-limiter-ldap.test.ts asks slapd again.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { failureAddressFor, failureKeyFor, ldapDnKey, ldapNameKey } from "../../lib/auth/failure-key.ts";
import { clientAddress } from "../../lib/connection/client-address.ts";
import { escapeDnValue } from "../../lib/auth/ldap.ts";
import { rulesFrom } from "../http/deps.ts";

const [ldapSimple, ldapSearch, password, md5, scram] = rulesFrom(
  [
    `host all all all ldap ldapserver=127.0.0.1 ldapprefix="uid=" ldapsuffix=",dc=example,dc=net"`,
    `host all all all ldap ldapserver=127.0.0.1 ldapbasedn="dc=example,dc=net"`,
    "host all all all password",
    "host all all all md5",
    "host all all all scram-sha-256",
  ].join("\n"),
);

/** Names slapd compares equal to test1 (caseIgnoreMatch, NFKC, insignificant spaces; tab/newline trimmed in a DN). */
const TEST1_SPELLINGS = ["TEST1", "Test1", " test1", "test1 ", "  test1  ", "\ttest1", "test1\n", "\rtest1", "ｔｅｓｔ１", "test①", "\u3000test1", "test1\u00a0", "test1\u2003"];

describe("failure keys", () => {
  test("LDAP: every spelling the directory takes for test1 is one key, in both modes", () => {
    const key = failureKeyFor(ldapSimple!, "test1");
    for (const name of TEST1_SPELLINGS) {
      assert.equal(failureKeyFor(ldapSimple!, name), key, JSON.stringify(name));
      assert.equal(failureKeyFor(ldapSearch!, name), key, JSON.stringify(name));
    }
  });

  test("LDAP: characters RFC 4518 maps to nothing and internal runs of spaces are folded too (fail closed)", () => {
    assert.equal(ldapNameKey("test\u00ad1"), "test1", "soft hyphen");
    assert.equal(ldapNameKey("test\u200b1"), "test1", "zero-width space");
    assert.equal(ldapNameKey("te\u0001st1\ufeff"), "test1", "control, byte-order mark");
    assert.equal(ldapNameKey(`o'brien,   "JR"+X`), `o'brien, "jr"+x`);
    assert.equal(ldapNameKey("STRASSE"), ldapNameKey("straße"));
    // Distinct names stay distinct: a key per person, not one for everybody.
    assert.notEqual(ldapNameKey("test1"), ldapNameKey("test2"));
    assert.notEqual(ldapNameKey("te st1"), ldapNameKey("test1"));
  });

  test("password methods: the role name exactly, as PostgreSQL compares roles", () => {
    for (const rule of [password!, md5!, scram!]) {
      assert.notEqual(failureKeyFor(rule, "Alice"), failureKeyFor(rule, "alice"));
      assert.notEqual(failureKeyFor(rule, "alice "), failureKeyFor(rule, "alice"));
      assert.equal(failureKeyFor(rule, "alice"), failureKeyFor(password!, "alice"));
    }
    // A role name and a directory name never share a key.
    assert.notEqual(failureKeyFor(password!, "test1"), failureKeyFor(ldapSimple!, "test1"));
  });

  test("LDAP DNs: the form a search returns and the form simple bind builds are one key", () => {
    const base = ",dc=example,dc=net";
    // slapd returned the first for the special user; the second is what simple bind sends.
    const searched = `uid=o'brien\\2C \\22jr\\22\\2Bx${base}`;
    assert.equal(ldapDnKey(searched), ldapDnKey(`uid=${escapeDnValue(`o'brien, "jr"+x`)}${base}`));
    assert.equal(ldapDnKey(`UID=Test1, DC=Example, DC=Net`), ldapDnKey(`uid=test1${base}`));
    for (const name of TEST1_SPELLINGS) assert.equal(ldapDnKey(`uid=${escapeDnValue(name)}${base}`), ldapDnKey(`uid=test1${base}`), JSON.stringify(name));
    assert.equal(ldapDnKey(`uid=\\C3\\A9${base}`), ldapDnKey(`uid=É${base}`), "hex-escaped UTF-8");
    assert.notEqual(ldapDnKey(`uid=test1${base}`), ldapDnKey(`uid=test2${base}`));
    assert.notEqual(ldapDnKey(`uid=test1\\,dc=example${base}`), ldapDnKey(`uid=test1,dc=example${base}`), "an escaped comma is not an RDN");
    // A DN key is never a name key.
    assert.notEqual(ldapDnKey("test1"), failureKeyFor(ldapSimple!, "test1"));
  });

  test("addresses: IPv4 as is, IPv6 by its /64, the Unix socket as one", () => {
    const at = (text: string) => failureAddressFor({ transport: "host", address: clientAddress(text)! });
    assert.equal(at("10.0.0.1"), "10.0.0.1");
    assert.equal(at("::ffff:10.0.0.1"), "10.0.0.1");
    assert.equal(at("2001:db8:1:2::1"), "2001:db8:1:2::/64");
    assert.equal(at("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
    assert.equal(at("::1"), "::/64");
    assert.notEqual(at("2001:db8:1:3::1"), at("2001:db8:1:2::1"));
    assert.equal(failureAddressFor({ transport: "local" }), "[local]");
  });
});
