// Golden tables: rules files beside expected decisions and expected errors, in
// the spirit of PgBouncer's hba_test.rules / hba_test.eval.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fileSource } from "../../lib/config/file-source.ts";
import { parseClientAddress, parseNumericHost, unmapIpv4, type IpAddress } from "../../lib/hba/address.ts";
import { formatError, loadHba } from "../../lib/hba/load.ts";
import type { LogEvent } from "../../lib/log.ts";
import { loadConfiguration } from "../../lib/config/configuration.ts";
import { matchHba, type ConnectionFacts, type MatchEnvironment } from "../../lib/hba/match.ts";
import { membershipFromGraph } from "../../lib/hba/roles.ts";

const dir = fileURLToPath(new URL("./golden", import.meta.url));

const ip = (s: string): IpAddress => parseNumericHost(s)!;

// A fixed world for the rules that consult it: this host's interfaces and DNS.
const REVERSE: Record<string, string> = {
  "10.2.0.1": "app.example.com",
  "10.2.0.2": "App.Example.COM",
  "10.2.0.3": "app.example.com",
  "10.2.0.4": "db.example.org",
  "10.2.0.5": "example.org",
  "10.2.0.6": "evilexample.org",
};
const FORWARD: Record<string, string[]> = {
  "app.example.com": ["10.2.0.1", "fd00:9::1"],
  "App.Example.COM": ["10.2.0.2"],
  "db.example.org": ["10.2.0.4"],
  "example.org": ["10.2.0.5"],
  "evilexample.org": ["10.2.0.6"],
};

function environment(): MatchEnvironment {
  const graph = JSON.parse(readFileSync(join(dir, "roles.json"), "utf8")) as Record<string, string[]>;
  return {
    isMember: membershipFromGraph(graph),
    reverseLookup: async (a) => {
      const { formatAddress } = await import("../../lib/hba/address.ts");
      return REVERSE[formatAddress(a)];
    },
    forwardLookup: async (name) => (FORWARD[name] ?? []).map(ip),
    interfaces: () => [
      { address: ip("10.1.0.1"), netmask: ip("255.255.0.0") },
      { address: ip("fd00:5::1"), netmask: ip("ffff:ffff:ffff:ffff::") },
    ],
  };
}

interface EvalRow {
  readonly text: string;
  readonly expected: { file: string; line: number; method: string } | null;
  readonly facts: ConnectionFacts;
}

function readEval(name: string): EvalRow[] {
  const rows: EvalRow[] = [];
  for (const text of readFileSync(join(dir, name), "utf8").split("\n")) {
    if (text.trim() === "" || text.startsWith("#")) continue;
    const [expect, database, user, addr, ...mods] = text.split(/\t+/);
    assert.ok(expect && database !== undefined && user !== undefined && addr, `bad eval row: ${text}`);
    let expected: EvalRow["expected"] = null;
    if (expect !== "none") {
      const parts = expect.split(":");
      const method = parts.pop()!;
      const line = Number(parts.pop());
      expected = { file: parts.length ? parts.join(":") : "main.rules", line, method };
    }
    const common = { database, user, ssl: mods.includes("ssl"), replication: mods.includes("replication") };
    const facts: ConnectionFacts =
      addr === "local"
        ? { transport: "local", ...common }
        : { transport: "host", address: unmapIpv4(parseClientAddress(addr)!), ...common };
    rows.push({ text, expected, facts });
  }
  return rows;
}

describe("golden: main.rules decisions", () => {
  const file = loadHba(join(dir, "main.rules"), fileSource);
  const env = environment();

  test("the rules file is valid", () => {
    assert.deepEqual(file.errors, []);
  });

  for (const row of readEval("main.eval")) {
    test(row.text.replace(/\t+/g, " | "), async () => {
      const { rule } = await matchHba(file.rules, row.facts, env);
      const got = rule ? { file: relative(dir, rule.file), line: rule.line, method: rule.method.name } : null;
      assert.deepEqual(got, row.expected);
    });
  }
});

/** LINE<TAB>MESSAGE rows of a .expected file; ${DIR} is this directory, a trailing * matches any rest. */
function readExpected(name: string): { line: number; message: string }[] {
  return readFileSync(join(dir, name), "utf8")
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const [line, message] = l.split("\t");
      return { line: Number(line), message: message!.replaceAll("${DIR}", dir) };
    });
}

/** Every X.rules beside an X.expected: exactly the expected errors, each at its line of X.rules. */
function describeErrors(rules: string): void {
  describe(`golden: ${rules} messages`, () => {
    const file = loadHba(join(dir, rules), fileSource);
    const expected = readExpected(rules.replace(/\.rules$/, ".expected"));

    test("every bad line is reported, in order, with file and line", () => {
      assert.deepEqual(
        file.errors.map((e) => e.line),
        expected.map((e) => e.line),
      );
      for (const e of file.errors) assert.equal(e.file, join(dir, rules));
    });

    for (const e of expected) {
      test(`line ${e.line}: ${e.message}`, () => {
        const got = file.errors.find((x) => x.line === e.line);
        assert.ok(got, `no error reported for line ${e.line}`);
        if (e.message.endsWith("*")) assert.ok(got.message.startsWith(e.message.slice(0, -1)), got.message);
        else assert.equal(got.message, e.message);
      });
    }

    if (rules === "errors.rules") {
      test("the valid lines still parse (for the view), but the gateway applies none of them", async () => {
        // The loader's contract: every line reported, valid ones parsed too, so
        // pg_hba_file_rules and `hba check` can show them; its callers refuse the file.
        assert.ok(file.rules.length >= 3);
        assert.ok(file.errors.length > 0);
        // One of those valid lines trusts everyone: applying the valid half would admit anybody.
        assert.ok(file.rules.some((r) => r.method.name === "trust" && r.users[0]?.kind === "all"));
        const logged: LogEvent[] = [];
        const loaded = await loadConfiguration({ hba: join(dir, rules), ident: undefined, verifier: undefined, roleCredentials: undefined }, fileSource, undefined, (e) => logged.push(e));
        assert.equal(loaded, undefined, "the gateway took rules from an invalid file");
        assert.deepEqual(
          logged.map((e) => e.error),
          file.errors.map(formatError),
        );
      });
    }
  });
}

for (const name of readdirSync(dir).filter((n) => n.endsWith(".expected")).sort()) {
  describeErrors(name.replace(/\.expected$/, ".rules"));
}

describe("golden: a file with no entries", () => {
  for (const rules of ["empty.rules", "comments-only.rules", "includes-nothing.rules"]) {
    test(`${rules}: no rules, no line errors, and still invalid (PostgreSQL: "contains no entries")`, () => {
      const file = loadHba(join(dir, rules), fileSource);
      assert.deepEqual(file.rules, []);
      // The view (pg_hba_file_rules) has nothing to show, as PostgreSQL's has not.
      assert.deepEqual(file.entries, []);
      assert.deepEqual(file.errors, [{ file: join(dir, rules), line: 1, message: `configuration file "${join(dir, rules)}" contains no entries` }]);
    });
  }
});

describe("golden: an unlucky editor", () => {
  test("bom.rules: a byte order mark fails line 1, as in PostgreSQL, and the message says why", () => {
    // PostgreSQL: invalid connection type "\uFEFF" (the mark is invisible in a terminal).
    const file = loadHba(join(dir, "bom.rules"), fileSource);
    assert.deepEqual(
      file.errors.map((e) => [e.line, e.message]),
      [[1, 'invalid connection type "\uFEFF" (the line starts with a byte order mark, U+FEFF: save the file without one)']],
    );
    assert.equal(file.rules.length, 1, "the CRLF line after it still parses");
  });
});
