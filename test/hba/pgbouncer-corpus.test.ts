// PgBouncer's hba corpus with the decisions a real PostgreSQL 18.4 made
// (../shared/corpora/pgbouncer): our parser must produce the server's
// pg_hba_file_rules rows, and our matcher the server's decision for each of
// the 148 recorded connection attempts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { memorySource } from "../../lib/config/source.ts";
import { parseClientAddress } from "../../lib/hba/address.ts";
import { loadHba } from "../../lib/hba/load.ts";
import { matchHba } from "../../lib/hba/match.ts";
import { fileRuleRows, type HbaFileRuleRow } from "../../lib/hba/view.ts";
import { corpusMissing } from "../harness/prerequisites.ts";

const corpus = fileURLToPath(new URL("../../../shared/corpora/pgbouncer/pg18-pgbouncer-corpus.jsonl", import.meta.url));

interface Request {
  readonly src: string;
  readonly tls: boolean;
  readonly replication?: string;
  readonly db: string;
  readonly user: string;
  readonly password: string;
  readonly result: "allow" | "deny";
  readonly pg_message?: string;
  readonly expected_method: string;
}

interface Scenario {
  readonly scenario: string;
  readonly hba: string;
  readonly pg_hba_file_rules: readonly string[];
  readonly requests?: readonly Request[];
}

/** The corpus's pipe-separated rendering of a view row. */
function render(r: HbaFileRuleRow): string {
  return [
    r.rule_number ?? "-",
    r.line_number,
    r.type ?? "",
    r.database?.join(",") ?? "",
    r.user_name?.join(",") ?? "",
    r.address ?? "",
    r.netmask ?? "",
    r.auth_method ?? "",
    r.options?.join(",") ?? "",
    r.error ?? "",
  ].join("|");
}

const PATH = "/corpus/pg_hba.conf";

const missing = corpusMissing([corpus], "PgBouncer's corpus with the decisions a real PostgreSQL 18.4 made; nothing in the repository regenerates it");

describe("PgBouncer corpus as decided by PostgreSQL 18", { skip: missing ?? false }, () => {
  const scenarios = missing === undefined
    ? readFileSync(corpus, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Scenario)
    : [];

  for (const s of scenarios) {
    test(`${s.scenario}: pg_hba_file_rules rows match the server's`, () => {
      const file = loadHba(PATH, memorySource({ [PATH]: s.hba }));
      assert.deepEqual(fileRuleRows(file).map(render), s.pg_hba_file_rules);
    });
  }

  const valid = scenarios.find((s) => s.scenario === "pgbouncer_rules_pgvalid");
  test("the corpus holds the 148 decided attempts", () => {
    assert.equal(valid?.requests?.length, 148);
  });
  const file = loadHba(PATH, memorySource({ [PATH]: valid?.hba ?? "" }));

  for (const r of valid?.requests ?? []) {
    const name = `${r.src}${r.tls ? " ssl" : ""}${r.replication ? " replication" : ""} ${r.db}/${r.user} pw=${r.password}: ${r.result}`;
    test(name, async () => {
      const address = parseClientAddress(r.src);
      assert.ok(address);
      const { rule } = await matchHba(
        file.rules,
        { transport: "host", address, ssl: r.tls, database: r.db, user: r.user, replication: r.replication === "true" },
        { isMember: () => false },
      );
      const method = rule?.method.name ?? "reject";
      assert.equal(method, r.expected_method);
      // An implicit and an explicit reject read differently in PostgreSQL's message.
      if (r.pg_message?.startsWith("no pg_hba.conf entry")) assert.equal(rule, null);
      if (r.pg_message?.startsWith("pg_hba.conf rejects")) assert.equal(rule?.method.name, "reject");
      // Allow/deny as the gateway will decide it: trust allows any password, the
      // password family needs the right one, reject/no match/cert without a certificate deny.
      const allowed =
        method === "trust" || (["password", "md5", "scram-sha-256"].includes(method) && r.password === "secret");
      assert.equal(allowed ? "allow" : "deny", r.result);
    });
  }
});
