// `hbagate hba check|match` run as a user runs it: the real bin/hbagate.js in
// a child process. The output is a contract (docs/hba-command.md), so the
// assertions are on exact text, exact JSON shapes and exit codes.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { run } from "../harness/spawn.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

// Paths inside the working directory are shown relative to it; file_name in JSON is absolute.
const VALID = "test/cli/fixtures/valid.rules";
const VALID_ABS = join(root, VALID);
const ROLES = "test/cli/fixtures/roles.json";

// An invalid file outside the working directory (so it is shown by its absolute
// path), with a continuation before the bad lines so physical line numbers matter.
const tmp = mkdtempSync(join(tmpdir(), "hbagate-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BAD = join(tmp, "bad.conf");
writeFileSync(
  BAD,
  [
    "# two bad lines: 4 and 6",
    "host all all 10.0.0.0/8 \\",
    "     md5",
    "hots all all all trust",
    "local all all peer",
    "host all all all magic",
    "",
  ].join("\n"),
);
const BAD_LINES = [`${BAD}:4: invalid connection type "hots"`, `${BAD}:6: invalid authentication method "magic"`];

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function hba(...args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const r = await run(process.execPath, ["bin/hbagate.js", "hba", ...args], { cwd: root, env, timeoutMs: 30_000 });
  assert.equal(r.timedOut, false, "spawn failed: timed out after 30 s");
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

const ROW_KEYS = [
  "rule_number",
  "file_name",
  "line_number",
  "type",
  "database",
  "user_name",
  "address",
  "netmask",
  "auth_method",
  "options",
  "error",
].sort();

function parseRows(stdout: string): Record<string, unknown>[] {
  const rows: unknown = JSON.parse(stdout);
  assert.ok(Array.isArray(rows), "check --json prints an array");
  for (const row of rows as unknown[]) {
    assert.ok(typeof row === "object" && row !== null && !Array.isArray(row), `row is an object: ${JSON.stringify(row)}`);
    assert.deepEqual(Object.keys(row).sort(), ROW_KEYS);
  }
  return rows as Record<string, unknown>[];
}

/** `match --json` output, with its key order (the JSON text is the contract). */
function parseMatch(r: Run): unknown {
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.ok(r.stdout.endsWith("\n") && !r.stdout.slice(0, -1).includes("\n"), `one line of JSON: ${r.stdout}`);
  return JSON.parse(r.stdout);
}

describe("hbagate --help", () => {
  test("every command prints its usage on stdout and exits 0", async () => {
    for (const args of [["hba", "--help"], ["hba", "-h"], ["hba", "check", "--help"], ["hba", "match", "--help"], ["--help"]]) {
      const r = await run(process.execPath, ["bin/hbagate.js", ...args], { cwd: root, timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.output}`);
      assert.match(r.stdout, /usage:/, args.join(" "));
    }
  });
});

describe("hbagate hba check", () => {
  test("a valid file: exit 0 and a one-line summary", async () => {
    const r = await hba("check", VALID);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${VALID}: 7 rules, no errors\n`);
    assert.equal(r.stderr, "");
  });

  test("an invalid file: exit 1 and FILE:LINE: message for each bad line", async () => {
    const r = await hba("check", BAD);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, BAD_LINES.map((l) => l + "\n").join(""));
    assert.equal(r.stderr, `${BAD}: 2 invalid lines; the file would be rejected\n`);
  });

  test("--json on a valid file: pg_hba_file_rules rows, exit 0", async () => {
    const r = await hba("check", VALID, "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const rows = parseRows(r.stdout);
    assert.deepEqual(
      rows.map((x) => [x.rule_number, x.line_number, x.type, x.auth_method, x.error]),
      [
        [1, 2, "local", "trust", null],
        [2, 3, "local", "peer", null],
        [3, 4, "hostssl", "ldap", null],
        [4, 5, "host", "reject", null],
        [5, 6, "host", "md5", null],
        [6, 7, "host", "password", null],
        [7, 9, "host", "trust", null],
      ],
    );
    for (const x of rows) assert.equal(x.file_name, VALID_ABS);
    assert.deepEqual(rows[2], {
      rule_number: 3,
      file_name: VALID_ABS,
      line_number: 4,
      type: "hostssl",
      database: ["all"],
      user_name: ["all"],
      address: "10.1.0.0",
      netmask: "255.255.0.0",
      auth_method: "ldap",
      // PostgreSQL's view shows ldapscope=2 (subtree) on ldap lines unless an ldapurl set another scope last.
      options: ["ldapserver=ldap.example.net", "ldapprefix=uid=", "ldapsuffix=,dc=example,dc=net", "ldapscope=2"],
      error: null,
    });
    assert.deepEqual(rows[0]!.address, null);
    assert.deepEqual(rows[1]!.options, ["map=localmap"]);
    assert.deepEqual([rows[4]!.database, rows[4]!.user_name], [["samerole"], ["+staff"]]);
    assert.deepEqual([rows[6]!.address, rows[6]!.netmask], ["::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
  });

  test("--json on an invalid file: every line, errors filled in, exit 1", async () => {
    const r = await hba("check", "--json", BAD);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "");
    const rows = parseRows(r.stdout);
    assert.deepEqual(
      rows.map((x) => [x.rule_number, x.file_name, x.line_number, x.type, x.error]),
      [
        [1, BAD, 2, "host", null],
        [null, BAD, 4, null, 'invalid connection type "hots"'],
        [2, BAD, 5, "local", null],
        [null, BAD, 6, null, 'invalid authentication method "magic"'],
      ],
    );
    // An error row carries nothing but its place and its message.
    for (const x of rows.filter((row) => row.error !== null)) {
      for (const k of ["database", "user_name", "address", "netmask", "auth_method", "options"]) assert.equal(x[k], null, k);
    }
  });
});

describe("hbagate hba check: a file with no rules is refused, as PostgreSQL refuses it", () => {
  // PostgreSQL: configuration file "…" contains no entries (it would refuse every connection).
  const EMPTY = join(tmp, "empty.conf");
  const COMMENTS = join(tmp, "comments.conf");
  const INCLUDES = join(tmp, "includes.conf");
  writeFileSync(EMPTY, "");
  writeFileSync(COMMENTS, "# nothing yet\r\n\r\n   \t\n# host all all all trust\n");
  writeFileSync(join(tmp, "nothing.conf"), "# empty\n");
  writeFileSync(INCLUDES, "include nothing.conf\ninclude_if_exists absent.conf\n");
  const noEntries = (f: string) => `${f}:1: configuration file "${f}" contains no entries\n`;

  for (const [what, file] of [["an empty file", EMPTY], ["only comments, blank and whitespace lines (CRLF too)", COMMENTS], ["only includes that bring in nothing", INCLUDES]] as const) {
    test(`${what}: exit 1, FILE:1: and PostgreSQL's message`, async () => {
      const r = await hba("check", file);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, noEntries(file));
      assert.equal(r.stderr, `${file}: no rules; the file would be rejected\n`);
    });
  }

  test("--json: no rows (PostgreSQL's view shows none either), exit 1, the reason on stderr", async () => {
    const r = await hba("check", EMPTY, "--json");
    assert.equal(r.code, 1);
    assert.deepEqual(parseRows(r.stdout), []);
    assert.equal(r.stderr, noEntries(EMPTY));
  });

  test("match: exit 1, no rule is used", async () => {
    const r = await hba("match", COMMENTS, "--address", "10.0.0.1", "--database", "d", "--user", "u");
    assert.equal(r.code, 1);
    assert.equal(r.stdout, noEntries(COMMENTS));
    assert.equal(r.stderr, `${COMMENTS}: invalid, no rule is used\n`);
  });
});

describe("hbagate hba match", () => {
  test("--address --json: the first matching line, a continued line reported at its first physical line", async () => {
    const out = parseMatch(await hba("match", VALID, "--address", "10.1.2.3", "--database", "app", "--user", "alice", "--json"));
    assert.deepEqual(out, { file_name: VALID_ABS, line_number: 7, auth_method: "password", options: null });
  });

  test("--ssl: hostssl lines apply; text output names FILE:LINE, method, options and the line", async () => {
    const r = await hba("match", VALID, "--address", "10.1.2.3", "--ssl", "--database", "app", "--user", "alice");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.equal(
      r.stdout,
      `${VALID}:4: ldap ldapserver=ldap.example.net ldapprefix=uid= ldapsuffix=,dc=example,dc=net ldapscope=2\n  hostssl all          all          10.1.0.0/16     ldap ldapserver=ldap.example.net ldapprefix=uid= ldapsuffix=",dc=example,dc=net"\n`,
    );
  });

  test("an IPv4-mapped address matches IPv4 rules", async () => {
    const out = parseMatch(await hba("match", VALID, "--address", "::ffff:10.1.2.3", "--database", "app", "--user", "alice", "--json"));
    assert.deepEqual(out, { file_name: VALID_ABS, line_number: 7, auth_method: "password", options: null });
  });

  test("--local --replication: only the replication keyword matches", async () => {
    // Without --replication, line 3 (local all postgres peer) would match.
    const out = parseMatch(await hba("match", VALID, "--local", "--replication", "--database", "postgres", "--user", "postgres", "--json"));
    assert.deepEqual(out, { file_name: VALID_ABS, line_number: 2, auth_method: "trust", options: null });
  });

  test("--roles: samerole and +group follow indirect membership", async () => {
    // carol is in team, team is in staff: a member of staff only indirectly.
    const out = parseMatch(
      await hba("match", VALID, "--address", "10.2.0.5", "--database", "staff", "--user", "carol", "--roles", ROLES, "--json"),
    );
    assert.deepEqual(out, { file_name: VALID_ABS, line_number: 6, auth_method: "md5", options: null });
  });

  test("no matching line: {\"line_number\":null}, exit 0 (without --roles nobody is a member)", async () => {
    const r = await hba("match", VALID, "--address", "10.2.0.5", "--database", "staff", "--user", "carol", "--json");
    assert.equal(r.stdout, '{"line_number":null}\n');
    assert.deepEqual(parseMatch(r), { line_number: null });
  });

  test("samehost, samenet and host names are judged on this machine's interfaces and DNS, as the running gateway judges them", async () => {
    const { matchHba } = await import("../../lib/hba/match.ts");
    const { loadHba } = await import("../../lib/hba/load.ts");
    const { fileSource } = await import("../../lib/config/file-source.ts");
    const { systemHost, systemInterfaces } = await import("../../lib/connection/system-host.ts");
    const { parseClientAddress } = await import("../../lib/hba/address.ts");
    // 127.0.0.1 is this machine's (samehost); 127.0.0.2 is on loopback's /8 (samenet) but no interface's
    // own address; "localhost" resolves both ways for 127.0.0.1 (host name line).
    assert.ok(systemInterfaces().some((i) => i.address.family === 4 && i.address.bytes.join(".") === "127.0.0.1"), "loopback interface expected");
    // An address on none of this machine's networks (documentation ranges; one of them may be ours).
    const onOurNet = (a: string) => {
      const x = parseClientAddress(a)!;
      return systemInterfaces().some((i) => i.address.family === x.family && i.address.bytes.every((b, k) => ((b ^ x.bytes[k]!) & i.netmask.bytes[k]!) === 0));
    };
    const elsewhere = ["198.51.100.1", "203.0.113.1", "192.0.2.1"].find((a) => !onOurNet(a))!;
    const file = join(tmp, "host-env.conf");
    writeFileSync(file, ["host all samehost_user samehost trust", "host all samenet_user samenet md5", "host all name_user localhost password", ""].join("\n"));
    const rules = loadHba(file, fileSource).rules;
    for (const [user, address, line] of [
      ["samehost_user", "127.0.0.1", 1],
      ["samehost_user", "127.0.0.2", null],
      ["samenet_user", "127.0.0.2", 2],
      ["samenet_user", elsewhere, null],
      ["name_user", "127.0.0.1", 3],
    ] as const) {
      const cli = parseMatch(await hba("match", file, "--address", address, "--database", "d", "--user", user, "--json")) as { line_number: number | null };
      const gateway = await matchHba(rules, { transport: "host", address: parseClientAddress(address)!, ssl: false, database: "d", user, replication: false }, { ...systemHost, isMember: () => false });
      assert.equal(cli.line_number, line, `${user} from ${address}`);
      assert.equal(gateway.rule?.line ?? null, line, `the gateway, ${user} from ${address}`);
    }
  });

  test("an invalid file: exit 1 with the same messages as check", async () => {
    const r = await hba("match", BAD, "--address", "10.0.0.1", "--database", "d", "--user", "u");
    assert.equal(r.code, 1);
    assert.equal(r.stdout, BAD_LINES.map((l) => l + "\n").join(""));
    assert.equal(r.stderr, `${BAD}: invalid, no rule is used\n`);
  });
});

describe("hbagate hba usage errors: exit 2, usage on stderr", () => {
  const cases: readonly (readonly [string, readonly string[], string])[] = [
    ["missing --user", ["match", VALID, "--address", "10.1.2.3", "--database", "d"], "--database and --user are required"],
    ["both --local and --address", ["match", VALID, "--local", "--address", "10.1.2.3", "--database", "d", "--user", "u"], "give exactly one of --local and --address"],
    ["unknown subcommand", ["frobnicate", VALID], 'unknown command "frobnicate"'],
    // inet_aton shorthand is fine in a rules file but never a client's address.
    ["bad address", ["match", VALID, "--address", "10.1.2", "--database", "d", "--user", "u"], 'invalid client address "10.1.2"'],
  ];
  for (const [name, args, why] of cases) {
    test(name, async () => {
      const r = await hba(...args);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, "");
      assert.ok(r.stderr.startsWith(`hbagate hba: ${why}\n`), r.stderr);
      assert.match(r.stderr, /^usage:$/m);
      assert.match(r.stderr, /hbagate hba check FILE \[--json\]/);
      assert.match(r.stderr, /hbagate hba match FILE /);
    });
  }
});
