// Golden table for pg_ident.conf: (map, system user, database user) -> allowed?
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fileSource } from "../../lib/config/file-source.ts";
import { membershipFromGraph } from "../../lib/hba/roles.ts";
import { identAllows, loadIdent } from "../../lib/ident/ident.ts";

const dir = fileURLToPath(new URL("./golden", import.meta.url));
const roles = JSON.parse(readFileSync(fileURLToPath(new URL("../hba/golden/roles.json", import.meta.url)), "utf8")) as Record<string, string[]>;

describe("golden: pg_ident.conf decisions", () => {
  const ident = loadIdent(join(dir, "pg_ident.conf"), fileSource);
  const env = { isMember: membershipFromGraph(roles) };

  test("the map file is valid and its include is read", () => {
    assert.deepEqual(ident.errors, []);
    assert.equal(ident.mappings.at(-1)?.file, join(dir, "ident-extra.conf"));
  });

  const rows = readFileSync(join(dir, "ident.eval"), "utf8")
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"));
  for (const row of rows) {
    const [expected, map, system, database] = row.split("\t");
    test(row.replace(/\t/g, " | "), async () => {
      const allowed = await identAllows(ident, map === "-" ? undefined : map, system!, database!, env);
      assert.equal(allowed ? "allow" : "deny", expected);
    });
  }
});
