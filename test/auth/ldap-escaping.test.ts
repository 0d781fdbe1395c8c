// The named security helpers of the LDAP method.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DN } from "ldapts";
import { escapeDnValue, escapeFilterValue, hasFilterSpecials } from "../../lib/auth/ldap.ts";

describe("LDAP escaping", () => {
  test("DN values: separators and quotes are escaped, so a name stays one RDN value", () => {
    assert.equal(escapeDnValue("alice"), "alice");
    assert.equal(escapeDnValue("o'brien, jr.+x"), "o'brien\\, jr.\\+x");
    assert.equal(escapeDnValue('a"b<c>d;e=f\\g'), 'a\\"b\\<c\\>d\\;e\\=f\\\\g');
    assert.equal(escapeDnValue(" lead"), "\\ lead");
    assert.equal(escapeDnValue("#hash"), "\\#hash");
    assert.equal(escapeDnValue("trail "), "trail\\ ");
    assert.equal(escapeDnValue("nul\0byte"), "nul\\00byte");
  });

  test("an injected DN never gains an RDN: the escaped name parses back to one uid", () => {
    for (const hostile of ["admin,dc=evil", "x+cn=root", "uid=admin,ou=People", '"quoted"']) {
      const dn = `uid=${escapeDnValue(hostile)},ou=People,dc=example,dc=net`;
      assert.equal(dn.split(/(?<!\\),/).length, 4, dn);
      assert.doesNotThrow(() => new DN({ uid: hostile }).toString());
    }
  });

  test("search+bind refuses the characters PostgreSQL refuses", () => {
    for (const bad of ["*", ")(uid=*", "admin)(|(uid=*", "a\\b", "a/b", "x(", "nul\0"]) assert.equal(hasFilterSpecials(bad), true, bad);
    for (const ok of ["alice", "o'brien, jr.+x", "dup@example.net"]) assert.equal(hasFilterSpecials(ok), false, ok);
  });

  test("filter values are escaped (RFC 4515)", () => {
    assert.equal(escapeFilterValue("alice"), "alice");
    assert.equal(escapeFilterValue("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
  });
});
