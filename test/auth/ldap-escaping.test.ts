// The named security helpers of the LDAP method.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { escapeDnValue, escapeFilterValue, hasFilterSpecials } from "../../lib/auth/ldap.ts";

type Rdn = [type: string, value: string][];

/**
 * An RFC 4514 reader (section 3), strict where a directory could read a string
 * two ways: RDNs end at an unescaped ",", attribute-value pairs at an
 * unescaped "+"; "\\" takes one special character or two hex digits (UTF-8
 * bytes); a value must not hold an unescaped `"`, ";", "<", ">" or NUL, start
 * with "#" or a space, or end with a space.
 */
function parseDn(dn: string): Rdn[] {
  const chars = Array.from(dn);
  const rdns: Rdn[] = [[]];
  let i = 0;
  for (;;) {
    let type = "";
    while (i < chars.length && chars[i] !== "=") type += chars[i++];
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(type) || chars[i] !== "=") throw new Error(`bad attribute type ${JSON.stringify(type)} in ${JSON.stringify(dn)}`);
    i++;
    const bytes: number[] = [];
    const start = i;
    let lastEscaped = false;
    while (i < chars.length && chars[i] !== "," && chars[i] !== "+") {
      const c = chars[i]!;
      lastEscaped = c === "\\";
      if (c === "\\") {
        const hex = (chars[i + 1] ?? "") + (chars[i + 2] ?? "");
        if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
          bytes.push(parseInt(hex, 16));
          i += 3;
        } else if (chars[i + 1] !== undefined && ` "#+,;<=>\\`.includes(chars[i + 1]!)) {
          bytes.push(...Buffer.from(chars[i + 1]!));
          i += 2;
        } else throw new Error(`bad escape at ${i} in ${JSON.stringify(dn)}`);
        continue;
      }
      if (`";<>\0`.includes(c)) throw new Error(`unescaped ${JSON.stringify(c)} in ${JSON.stringify(dn)}`);
      if (i === start && (c === " " || c === "#")) throw new Error(`unescaped leading ${JSON.stringify(c)} in ${JSON.stringify(dn)}`);
      bytes.push(...Buffer.from(c));
      i++;
    }
    if (i > start && !lastEscaped && chars[i - 1] === " ") throw new Error(`unescaped trailing space in ${JSON.stringify(dn)}`);
    rdns[rdns.length - 1]!.push([type, new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes))]);
    if (i >= chars.length) return rdns;
    if (chars[i] === ",") rdns.push([]);
    i++;
  }
}

/** An RFC 4515 assertion value back to text; unescaped "*", "(", ")", "\\" or NUL is an error. */
function decodeFilterValue(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; ) {
    if (value[i] === "\\") {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new Error(`bad escape at ${i} in ${JSON.stringify(value)}`);
      bytes.push(parseInt(hex, 16));
      i += 3;
      continue;
    }
    const c = String.fromCodePoint(value.codePointAt(i)!);
    if ("*()\0".includes(c)) throw new Error(`unescaped ${JSON.stringify(c)} in ${JSON.stringify(value)}`);
    bytes.push(...Buffer.from(c));
    i += c.length;
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
}

/** Hostile user names: separators, quotes, escapes, edge spaces, NUL, non-ASCII. */
const HOSTILE = [
  "admin,dc=evil",
  "x+cn=root",
  "uid=admin,ou=People",
  '"quoted"',
  "a;b",
  "<a>",
  "a\\b",
  "x\\",
  "\\,",
  " lead",
  "#hash",
  "trail ",
  "a\\ ",
  "\\ ",
  " ",
  "  ",
  "# #",
  "nul\0byte",
  "é+ü=ö",
  "😀,cn=x",
];

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

  test("an injected DN never gains an RDN: the escaped name parses back to one uid, the name itself", () => {
    for (const hostile of HOSTILE) {
      const dn = `uid=${escapeDnValue(hostile)},ou=People,dc=example,dc=net`;
      assert.deepEqual(parseDn(dn), [[["uid", hostile]], [["ou", "People"]], [["dc", "example"]], [["dc", "net"]]], dn);
    }
  });

  test("the reader used above refuses what the escaping must prevent", () => {
    for (const raw of ["a,b", "a+b", 'a"b', "a;b", " a", "#a", "a ", "a\\", "nul\0"]) {
      assert.throws(() => {
        const rdns = parseDn(`uid=${raw},dc=net`);
        // "a,b" and "a+b" parse, but not as one uid.
        assert.deepEqual(rdns[0], [["uid", raw]]);
      }, raw);
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

  test("an escaped filter value holds no filter syntax and decodes back to the name", () => {
    for (const hostile of [...HOSTILE, "*", ")(uid=*", "admin)(|(uid=*", "(cn=*)", "a\\2a"]) {
      const escaped = escapeFilterValue(hostile);
      assert.equal(decodeFilterValue(escaped), hostile, escaped);
    }
  });
});
