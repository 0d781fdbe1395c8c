// Property tests: whatever text a pg_hba.conf or pg_ident.conf holds, loading
// never throws, every bad line is reported against a real file and line, and
// matching over any valid file never throws. Complements the golden tables.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { memorySource } from "../../lib/config/source.ts";
import { formatAddress, parseNumericHost, unmapIpv4, type IpAddress } from "../../lib/hba/address.ts";
import { loadHba } from "../../lib/hba/load.ts";
import { matchHba, type ConnectionFacts, type MatchEnvironment } from "../../lib/hba/match.ts";
import type { HbaFile } from "../../lib/hba/rule.ts";
import { loadIdent, type IdentFile } from "../../lib/ident/ident.ts";

// Fixed seeds keep the runs reproducible; a failure prints its seed and path anyway.
const RUNS = { numRuns: 300, seed: 20240601 } as const;

// ---------------------------------------------------------------------------
// A small in-memory configuration tree. The top-level file's name does not end
// in ".conf", so `include_dir` of its own directory cannot re-include it; no
// included file includes the top-level file, so expansion stays bounded.

const ROOT = "/etc/pg";
const MAIN = `${ROOT}/hba.rules`;

const INCLUDED: Readonly<Record<string, string>> = {
  [`${ROOT}/inc/a.conf`]: "host all all 10.0.0.0/8 md5\n",
  [`${ROOT}/inc/b.conf`]: "# b\nhosts all all all trust\n\nlocal all all peer\n",
  [`${ROOT}/inc/.hidden.conf`]: "garbage garbage\n",
  [`${ROOT}/inc/notes.txt`]: "not included by include_dir\n",
  [`${ROOT}/sub/c.conf`]: "include ../inc/a.conf\nhost all @../users.list all trust\n",
  [`${ROOT}/users.list`]: 'alice, bob\n"quoted user" # comment\n+staff\n',
  [`${ROOT}/bad.list`]: "alice\n@nope.list\n",
  // Includes itself until PostgreSQL's nesting limit; a linear chain, so cheap.
  [`${ROOT}/loop.txt`]: "include loop.txt\n",
};

/** Physical lines as the tokenizer counts them: a final newline does not start another line. */
function lineCount(text: string): number {
  const parts = text.split("\n");
  if (parts[parts.length - 1] === "") parts.pop();
  return parts.length;
}

interface Located {
  readonly file: string;
  readonly line: number;
}

function assertLocated(what: string, x: Located, files: Readonly<Record<string, string>>): void {
  const text = files[x.file];
  assert.ok(text !== undefined, `${what} names an unknown file: ${JSON.stringify(x)}`);
  assert.ok(Number.isInteger(x.line), `${what} has a non-integer line: ${JSON.stringify(x)}`);
  assert.ok(x.line >= 1 && x.line <= lineCount(text), `${what} line ${x.line} outside 1..${lineCount(text)} of ${x.file}`);
}

function checkHbaInvariants(file: HbaFile, files: Readonly<Record<string, string>>): void {
  if (file.entries.length === 0) {
    // Not a single entry (PostgreSQL: "contains no entries"): one error for the
    // whole top-level file, at its line 1 even when the file is empty.
    assert.ok(files[file.path] !== undefined, `no entries, yet ${file.path} was read`);
    assert.deepEqual(file.errors, [{ file: file.path, line: 1, message: `configuration file "${file.path}" contains no entries` }]);
    assert.deepEqual(file.rules, []);
    return;
  }
  for (const e of file.errors) {
    assertLocated("error", e, files);
    assert.equal(typeof e.message, "string");
    assert.ok(e.message.length > 0, `empty message at ${e.file}:${e.line}`);
  }
  assert.equal(file.errors.length + file.rules.length, file.entries.length);
  // entries interleave exactly the rules and the errors, each in order.
  assert.deepEqual(
    file.entries.flatMap((x) => ("rule" in x ? [x.rule] : [])),
    [...file.rules],
  );
  assert.deepEqual(
    file.entries.flatMap((x) => ("error" in x ? [x.error] : [])),
    [...file.errors],
  );
  file.rules.forEach((r, i) => {
    assertLocated("rule", r, files);
    assert.equal(r.ruleNumber, i + 1);
  });
}

function checkIdentInvariants(file: IdentFile, files: Readonly<Record<string, string>>): void {
  for (const e of file.errors) {
    assertLocated("ident error", e, files);
    assert.equal(typeof e.message, "string");
    assert.ok(e.message.length > 0, `empty message at ${e.file}:${e.line}`);
  }
  assert.equal(file.errors.length + file.mappings.length, file.entries.length);
  file.mappings.forEach((m, i) => {
    assertLocated("mapping", m, files);
    assert.equal(m.mapNumber, i + 1);
  });
}

// ---------------------------------------------------------------------------
// Generators.

const SEPARATORS = [" ", " ", " ", "\t", ",", ", ", "\n", "\n", "\r\n", "\r", "\\\n", "\\", "#", " # c", "\0", '"', '""', "="];

const HBA_WORDS = [
  // connection types, and near misses
  "local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc", "hots", "Host",
  // database and user keywords and names
  "all", '"all"', "sameuser", "samerole", "samegroup", "replication", '"replication"', "+staff", '"+staff"', "+",
  "db1", "alice", '"bob smith"', '"db,comma"', 'a"b', '"x""y"', "/^app_", "/[", "/(", "/", "ünï",
  // file inclusion
  "@users.list", "@bad.list", "@nope.list", "@loop.txt", "@", '"@users.list"',
  "include", "include_if_exists", "include_dir", "inc/a.conf", "inc", "sub", "sub/c.conf", "loop.txt", "missing.conf",
  // addresses and masks
  "10.0.0.0/8", "10.0.0.1", "10.0.0.0/33", "255.255.255.0", "255.0.0.0", "::1/128", "::1", "fe80::1%eth0",
  "ffff::", "ffff:ffff::", "::ffff:10.1.2.3", "010.0.0.1", "0x7f.1", "example.com", ".example.org", "example.com/24",
  "samehost", "samenet", "/8", "/-1", "/ 8",
  // methods
  "trust", "reject", "password", "md5", "scram-sha-256", "peer", "cert", "ldap", "oauth", "ident", "gss", "radius", "magic",
  // options
  "map=m", "map=", "clientcert=verify-full", "clientcert=verify-ca", "clientname=DN", "ldapserver=x", "ldapbasedn=dc=x",
  "ldapprefix=uid=", "ldapport=0", "ldapport=389", "ldapscheme=ldaps", 'ldapurl="ldap://x/dc=x?uid?sub"', "ldapurl=ftp://x",
  "ldapbindpasswd=s", "ldapsearchfilter=(uid=$username)", "issuer=https://x", "scope=openid", "delegate_ident_mapping=1",
  "foo=bar", "foo", "=", "=x",
];

/** Text glued together from hba-ish words and separators (no spacing guaranteed). */
const hbaSoup = fc
  .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HBA_WORDS) }, { weight: 2, arbitrary: fc.constantFrom(...SEPARATORS) }), {
    maxLength: 80,
  })
  .map((parts) => parts.join(""));

/** Lines of space-separated hba words: shaped more like real files, so deeper parser paths run. */
const hbaLines = fc
  .array(
    fc.array(fc.oneof(fc.constantFrom(...HBA_WORDS), fc.constantFrom(...SEPARATORS)), { minLength: 0, maxLength: 9 }).map((w) => w.join(" ")),
    { maxLength: 12 },
  )
  .map((lines) => lines.join("\n"));

const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: "binary-ascii", maxLength: 200 }),
  fc.string({ unit: fc.constantFrom(..."host al10./\"#,@\\\n\r\t\0=+"), maxLength: 200 }),
  hbaSoup,
  hbaLines,
);

// The random body of one more included file, reached through `include inc/r.conf`,
// `include_dir inc` and `@inc/r.conf`. It gets no inclusion words, so it cannot recurse.
const INCLUDE_WORDS = new Set(["include", "include_if_exists", "include_dir", "@loop.txt"]);
const includedText = fc
  .array(fc.oneof(fc.constantFrom(...HBA_WORDS.filter((w) => !INCLUDE_WORDS.has(w))), fc.constantFrom(...SEPARATORS)), { maxLength: 40 })
  .map((parts) => parts.join(" "));
const RANDOM_INCLUDED = `${ROOT}/inc/r.conf`;
const RANDOM_INCLUDE_WORDS = ["include inc/r.conf", "include_if_exists inc/r.conf", "@inc/r.conf"];

function tree(main: string, included: string): Record<string, string> {
  return { ...INCLUDED, [RANDOM_INCLUDED]: included, [MAIN]: main };
}

const mainWithIncludes = fc.oneof(
  anyText,
  fc
    .array(fc.oneof({ weight: 4, arbitrary: hbaLines }, { weight: 1, arbitrary: fc.constantFrom(...RANDOM_INCLUDE_WORDS) }), { maxLength: 6 })
    .map((parts) => parts.join("\n")),
);

// ---------------------------------------------------------------------------

describe("property: loading pg_hba.conf", () => {
  test("random text never throws and every error names a real file and line", () => {
    fc.assert(
      fc.property(mainWithIncludes, includedText, (main, included) => {
        const files = tree(main, included);
        checkHbaInvariants(loadHba(MAIN, memorySource(files)), files);
      }),
      RUNS,
    );
  });

  test("loading is deterministic", () => {
    fc.assert(
      fc.property(mainWithIncludes, includedText, (main, included) => {
        const files = tree(main, included);
        const a = loadHba(MAIN, memorySource(files));
        const b = loadHba(MAIN, memorySource(files));
        assert.deepEqual(a.errors, b.errors);
        assert.deepEqual(a.rules, b.rules);
      }),
      { ...RUNS, numRuns: 150 },
    );
  });

  test("a few hand-picked edge cases", () => {
    const cases = [
      "",
      "\n",
      "\\",
      "\\\n",
      "host all all all trust \\",
      "#only a comment\n\n\n",
      '"',
      '"""',
      ",,,",
      "\0host all all all trust",
      "host all all all trust\0 garbage",
      "@loop.txt",
      "include loop.txt",
      "include_dir inc",
      "include_dir /",
      "include_dir .",
      'include ""',
      "include",
      "include a b",
      "host all @bad.list all trust",
    ];
    for (const main of cases) {
      const files = tree(main, "");
      checkHbaInvariants(loadHba(MAIN, memorySource(files)), files);
    }
  });

  test("a missing top-level file is the one error at line 0", () => {
    const file = loadHba(MAIN, memorySource(INCLUDED));
    assert.deepEqual(file.errors, [{ file: MAIN, line: 0, message: `could not open file "${MAIN}": No such file or directory` }]);
    assert.deepEqual(file.rules, []);
    assert.equal(file.entries.length, 1);
  });
});

// ---------------------------------------------------------------------------
// Mutations of the golden file: near-valid input exercises every check.

const golden = fileURLToPath(new URL("./golden", import.meta.url));
const GOLDEN_FILES: Readonly<Record<string, string>> = Object.fromEntries(
  ["main.rules", "dbs.list", "users.list", "inc/extra.conf", "conf.d/10-a.conf", "conf.d/20-b.conf", "conf.d/notes.txt"].map((p) => [
    join(golden, p),
    readFileSync(join(golden, p), "utf8"),
  ]),
);
const GOLDEN_MAIN = join(golden, "main.rules");
const GOLDEN_LINES = GOLDEN_FILES[GOLDEN_MAIN]!.split("\n");

type Mutation =
  | { readonly kind: "delete"; readonly line: number; readonly at: number }
  | { readonly kind: "insert"; readonly line: number; readonly at: number; readonly text: string }
  | { readonly kind: "duplicate-field"; readonly line: number; readonly field: number }
  | { readonly kind: "swap"; readonly a: number; readonly b: number }
  | { readonly kind: "drop"; readonly line: number }
  | { readonly kind: "truncate"; readonly at: number };

const MUTATION_CHARS = [" ", "\t", '"', ",", "#", "\\", "\n", "\r", "\0", "/", "=", "@", "+", ".", ":", "a", "0", "9", "x", "ü"];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), line: fc.nat(), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    line: fc.nat(),
    at: fc.nat(),
    text: fc.oneof(fc.constantFrom(...MUTATION_CHARS), fc.constantFrom(...HBA_WORDS)),
  }),
  fc.record({ kind: fc.constant("duplicate-field" as const), line: fc.nat(), field: fc.nat() }),
  fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant("drop" as const), line: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);

function mutate(lines: readonly string[], mutations: readonly Mutation[]): string {
  let ls = [...lines];
  for (const m of mutations) {
    if (ls.length === 0) break;
    switch (m.kind) {
      case "delete": {
        const i = m.line % ls.length;
        const s = ls[i]!;
        if (s.length > 0) {
          const at = m.at % s.length;
          ls[i] = s.slice(0, at) + s.slice(at + 1);
        }
        break;
      }
      case "insert": {
        const i = m.line % ls.length;
        const s = ls[i]!;
        const at = m.at % (s.length + 1);
        ls[i] = s.slice(0, at) + m.text + s.slice(at);
        break;
      }
      case "duplicate-field": {
        const i = m.line % ls.length;
        const fields = ls[i]!.split(/[ \t]+/);
        const f = m.field % fields.length;
        fields.splice(f, 0, fields[f]!);
        ls[i] = fields.join(" ");
        break;
      }
      case "swap": {
        const a = m.a % ls.length;
        const b = m.b % ls.length;
        [ls[a], ls[b]] = [ls[b]!, ls[a]!];
        break;
      }
      case "drop":
        ls.splice(m.line % ls.length, 1);
        break;
      case "truncate": {
        const text = ls.join("\n");
        ls = text.slice(0, m.at % (text.length + 1)).split("\n");
        break;
      }
    }
  }
  return ls.join("\n");
}

describe("property: mutated golden file", () => {
  test("the unmutated golden tree is valid here too", () => {
    const file = loadHba(GOLDEN_MAIN, memorySource(GOLDEN_FILES));
    assert.deepEqual(file.errors, []);
    checkHbaInvariants(file, GOLDEN_FILES);
  });

  test("mutations never throw and every error names a real file and line", () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 8 }), (mutations) => {
        const files = { ...GOLDEN_FILES, [GOLDEN_MAIN]: mutate(GOLDEN_LINES, mutations) };
        checkHbaInvariants(loadHba(GOLDEN_MAIN, memorySource(files)), files);
      }),
      RUNS,
    );
  });

  test("mutating an included file reports errors in that file", () => {
    const extra = join(golden, "inc/extra.conf");
    const extraLines = GOLDEN_FILES[extra]!.split("\n");
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 5 }), (mutations) => {
        const files = { ...GOLDEN_FILES, [extra]: mutate(extraLines, mutations) };
        checkHbaInvariants(loadHba(GOLDEN_MAIN, memorySource(files)), files);
      }),
      { ...RUNS, numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------

const IDENT = `${ROOT}/pg_ident.conf`;

const IDENT_WORDS = [
  "map1", "omicron", "bryanh", "guest1", "robert", "bob", "ann", "all", '"all"', "+staff", '"+staff"', "+",
  "/^(.*)@mydomain\\.com$", "/^(.*)@otherdomain\\.com$", "\\1", "/(", "/[[:alpha:]]+", "/^", '"/^x$"',
  '"a b"', 'x"y', '""', "@users.list", "@nope.list", "@loop.txt", "include", "include_dir", "inc/a.conf", "inc", "missing.conf",
];

const identText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc
    .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...IDENT_WORDS) }, { weight: 2, arbitrary: fc.constantFrom(...SEPARATORS) }), {
      maxLength: 60,
    })
    .map((p) => p.join("")),
  fc
    .array(fc.array(fc.constantFrom(...IDENT_WORDS), { maxLength: 5 }).map((w) => w.join(" ")), { maxLength: 10 })
    .map((l) => l.join("\n")),
);

describe("property: loading pg_ident.conf", () => {
  test("random text never throws and every error names a real file and line", () => {
    fc.assert(
      fc.property(identText, (text) => {
        const files = { ...INCLUDED, [IDENT]: text };
        checkIdentInvariants(loadIdent(IDENT, memorySource(files)), files);
      }),
      RUNS,
    );
  });

  test("loading is deterministic", () => {
    fc.assert(
      fc.property(identText, (text) => {
        const files = { ...INCLUDED, [IDENT]: text };
        const a = loadIdent(IDENT, memorySource(files));
        const b = loadIdent(IDENT, memorySource(files));
        assert.deepEqual(a.errors, b.errors);
        assert.deepEqual(a.mappings, b.mappings);
      }),
      { ...RUNS, numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------
// Matching: any valid file, any connection.

const TYPES = ["local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"] as const;
const DATABASES = ["all", "sameuser", "samerole", "samegroup", "replication", "db1", '"db,comma"', "db1,db2", "/^app_", '"all"', "@users.list", "+staff"];
const USERS = ["all", "alice", "+staff", '"+staff"', "/^svc_[0-9]+$", '"bob smith"', "alice,bob", "@users.list", '""', "sameuser"];
const ADDRESSES = [
  "all", "samehost", "samenet", "10.0.0.0/8", "10.1.2.3/32", "0.0.0.0/0", "::/0", "::1/128", "fd00::/8", "::ffff:10.0.0.0/104",
  "10.0.0.0 255.0.0.0", "fe80::1%eth0 ffff:ffff:ffff:ffff::", "example.com", ".example.org",
];
const METHODS = [
  "trust", "reject", "password", "md5", "scram-sha-256",
  "ldap ldapserver=x ldapbasedn=dc=x", "ldap ldapprefix=uid= ldapsuffix=,dc=x", "oauth issuer=https://x scope=openid",
];

const validishLine = fc.record({ type: fc.constantFrom(...TYPES), db: fc.constantFrom(...DATABASES), user: fc.constantFrom(...USERS), address: fc.constantFrom(...ADDRESSES), method: fc.constantFrom(...METHODS), peer: fc.boolean() }).map(
  ({ type, db, user, address, method, peer }) => {
    if (type === "local") return `local ${db} ${user} ${peer ? "peer map=m" : method}`;
    if (type === "hostssl" && peer) return `hostssl ${db} ${user} ${address} cert map=m`;
    return `${type} ${db} ${user} ${address} ${method}`;
  },
);

const validishFile = fc.array(fc.oneof({ weight: 6, arbitrary: validishLine }, { weight: 1, arbitrary: fc.constantFrom("# comment", "", "include inc/a.conf", "host all @users.list all md5") }), { minLength: 1, maxLength: 15 }).map((l) => l.join("\n") + "\n");

const clientAddress: fc.Arbitrary<IpAddress> = fc
  .oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom("10.1.2.3", "::1", "::ffff:10.1.2.3", "fe80::1", "127.0.0.1", "0.0.0.0", "::"))
  .chain((text) => {
    const a = parseNumericHost(text);
    assert.ok(a, `parseNumericHost rejected a valid address: ${text}`);
    return fc.constantFrom(a, unmapIpv4(a));
  });

const nameText = fc.oneof(
  fc.constantFrom("", "all", "alice", "bob smith", "db1", "db,comma", "replication", "+staff", "staff", "app_x", "svc_12", 'q"uote', "ünïcødé", "\0"),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
);

const facts: fc.Arbitrary<ConnectionFacts> = fc.oneof(
  fc.record({ transport: fc.constant("local" as const), ssl: fc.constant(false), database: nameText, user: nameText, replication: fc.boolean() }),
  fc.record({ transport: fc.constant("host" as const), address: clientAddress, ssl: fc.boolean(), database: nameText, user: nameText, replication: fc.boolean() }),
);

describe("property: numeric addresses", () => {
  test("every IPv4/IPv6 address parses, and formatting then parsing gives the same bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        const a = parseNumericHost(text);
        assert.ok(a, `not parsed: ${text}`);
        assert.equal(a.bytes.length, a.family === 4 ? 4 : 16);
        const again = parseNumericHost(formatAddress(a));
        assert.ok(again, `formatted form not parsed: ${formatAddress(a)}`);
        assert.deepEqual(again, a);
      }),
      { ...RUNS, numRuns: 500 },
    );
  });
});

describe("property: matching", () => {
  test("a valid file matches any connection without throwing", async () => {
    let valid = 0;
    let matched = 0;
    const envs: MatchEnvironment[] = [
      { isMember: () => false },
      {
        isMember: async (u, r) => u === r,
        reverseLookup: () => Promise.reject(new Error("dns down")),
        forwardLookup: () => Promise.reject(new Error("dns down")),
        interfaces: () => [],
      },
    ];
    await fc.assert(
      fc.asyncProperty(validishFile, fc.array(facts, { minLength: 1, maxLength: 4 }), fc.nat(1), async (main, connections, e) => {
        const file = loadHba(MAIN, memorySource(tree(main, "")));
        if (file.errors.length > 0) return;
        valid++;
        for (const c of connections) {
          const result = await matchHba(file.rules, c, envs[e]!);
          if (result.rule !== null) {
            matched++;
            assert.ok(file.rules.includes(result.rule), "matchHba returned a rule that is not in the file");
          }
        }
      }),
      { ...RUNS, numRuns: 200 },
    );
    // The generator must mostly produce valid files, or this property tests nothing.
    assert.ok(valid >= 50, `only ${valid} of 200 generated files were valid`);
    assert.ok(matched > 0, "no connection ever matched");
  });
});

// ---------------------------------------------------------------------------
// Line numbers: not only somewhere in the file, but the line PostgreSQL names.
// A file of lines known good or known bad, some continued over several
// physical lines with a trailing backslash: each error, and each rule or
// mapping, is at the first physical line of its own logical line, and only
// the bad lines have errors.

const HBA_GOOD = ["host all all 10.0.0.0/8 trust", "local all all peer", "hostssl db1 alice ::1/128 scram-sha-256", "host db1,db2 alice,bob 10.0.0.0 255.0.0.0 md5", 'host "db one" all all reject'];
const HBA_BAD = ["hots all all all trust", "host all all", "host all all 10.0.0.0/33 md5", "host all all all magic", "local all all md5 foo", "host all all 10.0.0.1 trust", "host all all all peer"];
const IDENT_GOOD = ["map1 bob bob", "map1 /^(.*)@example$ alice", "office carol +staff", 'web "dave smith" dave'];
const IDENT_BAD = ["map1 bob", "map1 a,b c", "map1 /( x", "map1"];
const FILLER = ["", "# a comment", "   "];

type Entry = { readonly kind: "good" | "bad" | "filler"; readonly physical: readonly string[] };

/** One logical line, cut at up to two places into physical lines joined by a trailing backslash. */
function entry(good: readonly string[], bad: readonly string[]): fc.Arbitrary<Entry> {
  const continued = (kind: "good" | "bad", texts: readonly string[]) =>
    fc.tuple(fc.constantFrom(...texts), fc.array(fc.nat(), { maxLength: 2 })).map(([text, cuts]): Entry => {
      const at = [...new Set(cuts.map((c) => 1 + (c % (text.length - 1))))].sort((a, b) => a - b);
      const pieces = [0, ...at].map((from, i) => text.slice(from, at[i] ?? text.length));
      return { kind, physical: pieces.map((p, i) => (i < pieces.length - 1 ? `${p}\\` : p)) };
    });
  return fc.oneof(continued("good", good), continued("bad", bad), fc.constantFrom(...FILLER).map((f): Entry => ({ kind: "filler", physical: [f] })));
}

function layout(entries: readonly Entry[], eol: string, finalEol: boolean): { text: string; good: number[]; bad: number[] } {
  const good: number[] = [];
  const bad: number[] = [];
  let line = 1;
  for (const e of entries) {
    if (e.kind === "good") good.push(line);
    if (e.kind === "bad") bad.push(line);
    line += e.physical.length;
  }
  const text = entries.flatMap((e) => e.physical).join(eol) + (finalEol ? eol : "");
  return { text, good, bad };
}

describe("property: errors name the line PostgreSQL names", () => {
  test("the known lines are what this test takes them for", () => {
    for (const l of HBA_GOOD) assert.deepEqual(loadHba(MAIN, memorySource({ [MAIN]: l })).errors, [], l);
    for (const l of HBA_BAD) assert.equal(loadHba(MAIN, memorySource({ [MAIN]: l })).errors.length, 1, l);
    for (const l of IDENT_GOOD) assert.deepEqual(loadIdent(IDENT, memorySource({ [IDENT]: l })).errors, [], l);
    for (const l of IDENT_BAD) assert.equal(loadIdent(IDENT, memorySource({ [IDENT]: l })).errors.length, 1, l);
  });

  const file = (good: readonly string[], bad: readonly string[]) =>
    fc.tuple(fc.array(entry(good, bad), { minLength: 1, maxLength: 12 }), fc.constantFrom("\n", "\r\n"), fc.boolean());

  test("pg_hba.conf: each error and each rule at the first physical line of its logical line", () => {
    fc.assert(
      fc.property(file(HBA_GOOD, HBA_BAD), ([entries, eol, finalEol]) => {
        const { text, good, bad } = layout(entries, eol, finalEol);
        const loaded = loadHba(MAIN, memorySource({ [MAIN]: text }));
        if (good.length + bad.length === 0) {
          assert.deepEqual(loaded.errors.map((e) => e.line), [1], "no entries: one error, at line 1");
          return;
        }
        assert.deepEqual(loaded.errors.map((e) => [e.file, e.line]), bad.map((l) => [MAIN, l]), JSON.stringify(text));
        assert.deepEqual(loaded.rules.map((r) => [r.file, r.line]), good.map((l) => [MAIN, l]), JSON.stringify(text));
      }),
      RUNS,
    );
  });

  test("pg_ident.conf: each error and each mapping at the first physical line of its logical line", () => {
    fc.assert(
      fc.property(file(IDENT_GOOD, IDENT_BAD), ([entries, eol, finalEol]) => {
        const { text, good, bad } = layout(entries, eol, finalEol);
        const loaded = loadIdent(IDENT, memorySource({ [IDENT]: text }));
        assert.deepEqual(loaded.errors.map((e) => [e.file, e.line]), bad.map((l) => [IDENT, l]), JSON.stringify(text));
        assert.deepEqual(loaded.mappings.map((m) => [m.file, m.line]), good.map((l) => [IDENT, l]), JSON.stringify(text));
      }),
      RUNS,
    );
  });
});
