// Verifier files (PgBouncer's auth_file format): parsing with file and line
// errors, and password checks against secrets a real PostgreSQL made, with
// PostgreSQL's own logins as the oracle for which method accepts what.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import postgres from "postgres";
import { parseVerifierFile } from "../../lib/auth/verifier-file.ts";
import { verifyPassword, type PasswordMethod } from "../../lib/auth/verify-password.ts";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";

const METHODS: readonly PasswordMethod[] = ["password", "md5", "scram-sha-256"];

/** Made by PostgreSQL 15 for the password "correct horse". */
const SCRAM =
  "SCRAM-SHA-256$4096:fUyABb+KhZgeWGvP7KBuqA==$SGHdutvOIWg5aMJ0tbmQWUrDjx/9bXunXw8VTgXBrKE=:5eXGm6CnxyxQqYAX8oGJs/32fLzsBkzvdMYSuUXm38A=";
/** PgBouncer's documented example: user admin, password 1234. */
const MD5 = "md545f2603610af569b6155c45067268c6b";

/** A field as the file writes it: double quotes around, inner quotes doubled. */
const q = (s: string) => `"${s.replaceAll('"', '""')}"`;

describe("parseVerifierFile", () => {
  test("quoted fields, doubled quotes, comments, blank lines and trailing text", async () => {
    const text = [
      "; PgBouncer's comment",
      "  # and a shell-style one",
      "",
      `"admin" "${MD5}" "ignored third field"`,
      `\t"scram user"\t"${SCRAM}"   trailing words are ignored\r`,
      `"say ""hi""" "let ""me"" in"`,
      "   ",
    ].join("\n");
    const file = parseVerifierFile("/etc/hbagate/users.txt", text);
    assert.deepEqual(file.errors, []);
    assert.deepEqual([...file.entries.keys()], ["admin", "scram user", 'say "hi"']);
    assert.deepEqual(file.entries.get("admin"), { kind: "md5", hash: MD5 });
    assert.deepEqual(file.entries.get('say "hi"'), { kind: "plain", password: 'let "me" in' });
    const scram = file.entries.get("scram user");
    assert.equal(scram?.kind, "scram-sha-256");
    if (scram?.kind !== "scram-sha-256") return;
    assert.equal(scram.iterations, 4096);
    assert.equal(scram.salt.length, 16);
    assert.equal(scram.storedKey.length, 32);
    assert.equal(scram.serverKey.length, 32);

    assert.equal(await verifyPassword(file, "md5", "admin", "1234"), true);
    assert.equal(await verifyPassword(file, "scram-sha-256", "scram user", "correct horse"), true);
    assert.equal(await verifyPassword(file, "password", 'say "hi"', 'let "me" in'), true);
  });

  test("malformed lines are errors naming file and line; secrets never appear in messages", () => {
    const b64 = (n: number) => Buffer.alloc(n, 7).toString("base64");
    const key = b64(32);
    const lines: [string, RegExp | null][] = [
      ['"ok" "fine"', null],
      ['alice "pw"', /double-quoted user name/],
      ['"alice" pw', /double-quoted password/],
      ['"alice', /unterminated quoted user name/],
      ['"bob" "pw', /unterminated quoted password/],
      ['"carol"', /missing password/],
      ['"dave"x "pw"', /double-quoted password/],
      ['"" "pw"', /empty user name/],
      ['"erin" ""', /empty password/],
      ['"gina" "md5abc123"', /MD5.*found 9 characters/],
      [`"hal" "md5${"A".repeat(32)}"`, /MD5.*lowercase/],
      [`"ian" "md5${"0".repeat(33)}"`, /MD5.*found 36 characters/],
      ['"jo" "SCRAM-SHA-256$4096:c2FsdA=="', /SCRAM.*expected/],
      [`"kim" "SCRAM-SHA-256$0:c2FsdA==$${key}:${key}"`, /SCRAM.*iteration/],
      [`"lee" "SCRAM-SHA-256$4k:c2FsdA==$${key}:${key}"`, /SCRAM.*iteration/],
      [`"max" "SCRAM-SHA-256$4096:sa!t$${key}:${key}"`, /SCRAM.*salt/],
      [`"ned" "SCRAM-SHA-256$4096:$${key}:${key}"`, /SCRAM.*salt/],
      [`"oli" "SCRAM-SHA-256$4096:c2FsdA==$${b64(31)}:${key}"`, /SCRAM.*StoredKey/],
      [`"pat" "SCRAM-SHA-256$4096:c2FsdA==$${key}:${key.replace(/=+$/, "")}"`, /SCRAM.*ServerKey/],
      [`"quin" "SCRAM-SHA-256$4096:c2FsdA==$${key}:${key}:extra"`, /SCRAM.*ServerKey/],
      [`"ray" "SCRAM-SHA-1$4096:c2FsdA==$${key}:${key}"`, /SCRAM.*expected/],
      ['"sue" "a\0b"', /NUL/],
      ['"ok" "again"', /duplicate entry for user "ok" \(first at line 1\)/],
    ];
    const file = parseVerifierFile("users.txt", lines.map(([l]) => l).join("\n"));
    const expected = lines.flatMap(([, re], i) => (re ? [{ line: i + 1, re }] : []));
    assert.deepEqual(
      file.errors.map((e) => [e.file, e.line]),
      expected.map((e) => ["users.txt", e.line]),
    );
    file.errors.forEach((e, i) => assert.match(e.message, expected[i]!.re, `line ${e.line}`));
    for (const e of file.errors) assert.doesNotMatch(e.message, /c2FsdA|md5abc|AAAA|BwcH/, `line ${e.line} leaks its secret`);
    assert.deepEqual([...file.entries.keys()], ["ok"]);
  });

  test("a file with errors cannot be used", async () => {
    const file = parseVerifierFile("users.txt", '"ok" "fine"\nbroken\n');
    await assert.rejects(verifyPassword(file, "password", "ok", "fine"));
  });

  test("the result cannot be changed", () => {
    const file = parseVerifierFile("users.txt", `"a" "x"\n"b" "${SCRAM}"\nbad\n`);
    assert.ok(Object.isFrozen(file) && Object.isFrozen(file.errors) && Object.isFrozen(file.errors[0]));
    assert.ok(Object.isFrozen(file.entries.get("a")) && Object.isFrozen(file.entries.get("b")));
    assert.equal((file.entries as unknown as { set?: unknown }).set, undefined);
    assert.throws(() => (file.errors as unknown[]).push("x"), TypeError);
  });
});

interface Role {
  readonly name: string;
  readonly encryption: "md5" | "scram-sha-256";
  readonly password: string;
}

const ROLES: readonly Role[] = [
  { name: "scram_user", encryption: "scram-sha-256", password: "correct horse battery staple" },
  { name: 'md5 "user"', encryption: "md5", password: "Tr0ub4dor&3" },
  { name: "quote_user", encryption: "scram-sha-256", password: 'say "cheese"' },
  { name: "utf8_scram", encryption: "scram-sha-256", password: "pässwörd-€" },
  { name: "utf8_md5", encryption: "md5", password: "café" },
  { name: "nbsp_scram", encryption: "scram-sha-256", password: "open\u00A0sesame" },
  { name: "compat_scram", encryption: "scram-sha-256", password: "ｐａｓｓ\u00ADword" },
  // U+1F511 was unassigned in Unicode 3.2: SASLprep refuses it and PostgreSQL keeps the raw bytes.
  { name: "emoji_scram", encryption: "scram-sha-256", password: "\u{1F511} key" },
  // A right-to-left letter beside a left-to-right one: SASLprep's bidi rule refuses it, raw bytes kept.
  { name: "bidi_scram", encryption: "scram-sha-256", password: "\u05D0 b" },
];

const PLAIN = { name: "plain_user", password: 'let "me" in' };

interface Case {
  readonly user: string;
  readonly password: string;
  /** Accepted under password, md5, scram-sha-256. */
  readonly accept: readonly [boolean, boolean, boolean];
  /**
   * Methods where a postgres.js login is a fair oracle. It has no SASLprep, so
   * a password that SASLprep changes is asked only under `password`, where the
   * server gets the cleartext and prepares it itself.
   */
  readonly oracle?: readonly PasswordMethod[];
}

const ALL: Case["accept"] = [true, true, true];
const NONE: Case["accept"] = [false, false, false];
const NOT_SCRAM: Case["accept"] = [true, true, false];
const SERVER_SIDE: readonly PasswordMethod[] = ["password"];

const CASES: readonly Case[] = [
  { user: "scram_user", password: "correct horse battery staple", accept: ALL },
  { user: "scram_user", password: "correct horse battery stapl", accept: NONE },
  { user: 'md5 "user"', password: "Tr0ub4dor&3", accept: NOT_SCRAM },
  { user: 'md5 "user"', password: "tr0ub4dor&3", accept: NONE },
  { user: "quote_user", password: 'say "cheese"', accept: ALL },
  { user: "quote_user", password: 'say ""cheese""', accept: NONE },
  { user: "utf8_scram", password: "pässwörd-€", accept: ALL },
  // Decomposed input: SASLprep composes it again.
  { user: "utf8_scram", password: "pässwörd-€".normalize("NFD"), accept: ALL, oracle: SERVER_SIDE },
  { user: "utf8_md5", password: "café", accept: NOT_SCRAM },
  // MD5 hashes the bytes as sent: no normalization.
  { user: "utf8_md5", password: "café".normalize("NFD"), accept: NONE },
  { user: "nbsp_scram", password: "open\u00A0sesame", accept: ALL, oracle: SERVER_SIDE },
  { user: "nbsp_scram", password: "open sesame", accept: ALL },
  { user: "nbsp_scram", password: "opensesame", accept: NONE },
  { user: "compat_scram", password: "ｐａｓｓ\u00ADword", accept: ALL, oracle: SERVER_SIDE },
  { user: "compat_scram", password: "password", accept: ALL },
  { user: "emoji_scram", password: "\u{1F511} key", accept: ALL },
  { user: "emoji_scram", password: "\u{1F511}key", accept: NONE },
  { user: "no_such_user", password: "correct horse battery staple", accept: NONE },
];

async function createRole(c: Cluster, r: Role): Promise<void> {
  await c.sql.begin(async (tx) => {
    await tx.unsafe(`set local password_encryption = '${r.encryption}'`);
    const [row] = await tx<{ q: string }[]>`select format('create role %I login password %L', ${r.name}::text, ${r.password}::text) as q`;
    await tx.unsafe(row!.q);
  });
}

/** A real login over TCP: true on success, false on 28P01. */
async function login(c: Cluster, user: string, pass: string): Promise<boolean> {
  const sql = postgres({ host: "127.0.0.1", port: c.port, user, pass, database: "postgres", max: 1, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "28P01") return false;
    throw err;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

describe("verifyPassword against secrets PostgreSQL made", { skip: flavorMissing("debian") ?? false }, () => {
  let c: Cluster;
  let text = "";
  before(async () => {
    c = await startCluster();
    for (const r of ROLES) await createRole(c, r);
    const rows = await c.sql<{ rolname: string; rolpassword: string }[]>`
      select rolname, rolpassword from pg_authid where rolname = any(${ROLES.map((r) => r.name)}) order by oid`;
    assert.equal(rows.length, ROLES.length);
    text = rows.map((r) => `${q(r.rolname)} ${q(r.rolpassword)}`).concat(`${q(PLAIN.name)} ${q(PLAIN.password)}`).join("\n") + "\n";
  });
  after(async () => c?.stop());

  test("the file holds PostgreSQL's own secrets", () => {
    const file = parseVerifierFile("users.txt", text);
    assert.deepEqual(file.errors, []);
    for (const r of ROLES) assert.equal(file.entries.get(r.name)?.kind, r.encryption, r.name);
    assert.equal(file.entries.get(PLAIN.name)?.kind, "plain");
  });

  test("each method accepts what PostgreSQL's logins accept", async () => {
    const file = parseVerifierFile("users.txt", text);
    const problems: string[] = [];
    for (const [m, method] of METHODS.entries()) {
      await c.writeHba(`host all all 127.0.0.1/32 ${method}\n`, { reload: true });
      for (const k of CASES) {
        const expected = k.accept[m]!;
        const label = `${method} ${JSON.stringify(k.user)} ${JSON.stringify(k.password)}`;
        const ours = await verifyPassword(file, method, k.user, k.password);
        if (ours !== expected) problems.push(`${label}: ours ${ours}, expected ${expected}`);
        if (!(k.oracle ?? METHODS).includes(method)) continue;
        const theirs = await login(c, k.user, k.password);
        if (theirs !== expected) problems.push(`${label}: PostgreSQL ${theirs}, expected ${expected}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test("SASLprep as PostgreSQL does it: a variant of a password stored raw (SASLprep refused it) is refused, as PostgreSQL refuses it", async () => {
    // PostgreSQL stored "🔑 key" as raw bytes (SASLprep refuses U+1F511, unassigned in Unicode 3.2),
    // and "א b" too (a right-to-left letter beside a left-to-right one breaks the bidi rule). A
    // no-break space in place of the space would map back to those bytes if SASLprep were only
    // approximated (mapping and NFKC, without its prohibitions): the approximation accepted it.
    const file = parseVerifierFile("users.txt", text);
    await c.writeHba("host all all 127.0.0.1/32 password\n", { reload: true });
    for (const [user, password, accept] of [
      ["emoji_scram", "\u{1F511}\u00A0key", false],
      ["emoji_scram", "\u{1F511} key", true],
      ["bidi_scram", "\u05D0\u00A0b", false],
      ["bidi_scram", "\u05D0 b", true],
    ] as const) {
      assert.equal(await login(c, user, password), accept, `PostgreSQL: ${user} ${JSON.stringify(password)}`);
      assert.equal(await verifyPassword(file, "password", user, password), accept, `hbagate: ${user} ${JSON.stringify(password)}`);
      assert.equal(await verifyPassword(file, "scram-sha-256", user, password), accept, `hbagate, scram-sha-256: ${user} ${JSON.stringify(password)}`);
    }
  });

  test("plain-text entries pass every method; empty passwords and unknown users never do", async () => {
    const file = parseVerifierFile("users.txt", text);
    for (const method of METHODS) {
      assert.equal(await verifyPassword(file, method, PLAIN.name, PLAIN.password), true, method);
      assert.equal(await verifyPassword(file, method, PLAIN.name, "let me in"), false, method);
      assert.equal(await verifyPassword(file, method, "scram_user", ""), false, method);
      assert.equal(await verifyPassword(file, method, "nobody", "anything"), false, method);
    }
  });

  test("refusals cost about the same, known user or not", async () => {
    const file = parseVerifierFile("users.txt", text);
    const refusals: [PasswordMethod, string][] = [
      ["scram-sha-256", "scram_user"], // wrong password
      ["scram-sha-256", "nobody"], // unknown user
      ["scram-sha-256", 'md5 "user"'], // stored form the method cannot use
      ["md5", 'md5 "user"'], // MD5 check, with the SCRAM work alongside
    ];
    const times = refusals.map(() => [] as number[]);
    for (let round = 0; round < 15; round++) {
      for (const [i, [method, user]] of refusals.entries()) {
        const start = process.hrtime.bigint();
        assert.equal(await verifyPassword(file, method, user, "wrong password"), false);
        times[i]!.push(Number(process.hrtime.bigint() - start));
      }
    }
    const base = median(times[0]!);
    for (const [i, [method, user]] of refusals.entries()) {
      const ratio = median(times[i]!) / base;
      assert.ok(ratio > 1 / 3 && ratio < 3, `${method} ${user}: ${ratio.toFixed(2)}× the time of a wrong password`);
    }
  });
});
