// pg_ident.conf matching against a real server: PostgreSQL 18 decides each
// row of the golden table (test/ident/golden/ident.eval) through `cert`
// authentication, whose system user is the client certificate's CN — any
// name we choose, spaces and case included — and hbagate's identAllows must
// decide the same. The golden table alone is hand-written; this makes
// PostgreSQL its oracle (regex maps, \1, +group, all, a regex database user).
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { fileSource } from "../../lib/config/file-source.ts";
import { membershipFromGraph } from "../../lib/hba/roles.ts";
import { identAllows, loadIdent } from "../../lib/ident/ident.ts";
import { makeCa, type Ca } from "../harness/certs.ts";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";

const golden = fileURLToPath(new URL("./golden", import.meta.url));
const roles = JSON.parse(readFileSync(fileURLToPath(new URL("../hba/golden/roles.json", import.meta.url)), "utf8")) as Record<string, string[]>;
const rows = readFileSync(join(golden, "ident.eval"), "utf8")
  .split("\n")
  .filter((l) => l !== "" && !l.startsWith("#"))
  .map((l) => l.split("\t") as [string, string, string, string]);

describe("pg_ident.conf matching: hbagate against PostgreSQL 18's own decisions (cert authentication)", { skip: flavorMissing("embedded", { ssl: true }) ?? false }, () => {
  let cluster: Cluster;
  let pki: string;
  let ca: Ca;
  const certs = new Map<string, { cert: string; key: string }>();

  /** A client certificate whose CN is `cn`, signed by the test CA the server trusts. */
  const certFor = (cn: string) => {
    let c = certs.get(cn);
    if (!c) {
      const { cert, key } = ca.issue(`client-${certs.size}`, { cn });
      c = { cert, key };
      certs.set(cn, c);
    }
    return c;
  };

  before(async () => {
    pki = mkdtempSync(join(tmpdir(), "hbagate-ident-pki-"));
    chmodSync(pki, 0o755);
    ca = makeCa(pki, "ca", { cn: "hbagate test CA" });
    cluster = await startCluster({ flavor: "embedded", ssl: true, settings: { ssl_ca_file: `'${ca.certFile}'` } });
    // Every database user the table names, able to log in; groups as roles.json says.
    const users = new Set(rows.map((r) => r[3]).concat(Object.keys(roles)));
    for (const u of users) if (u !== "postgres") await cluster.sql.unsafe(`create role ${JSON.stringify(u)} login`);
    for (const [group, members] of Object.entries(roles)) {
      for (const m of members) await cluster.sql.unsafe(`grant ${JSON.stringify(group)} to ${JSON.stringify(m)}`);
    }
    // The golden maps, include and all, as the server's ident file.
    const text = readFileSync(join(golden, "pg_ident.conf"), "utf8").replace("include ident-extra.conf", readFileSync(join(golden, "ident-extra.conf"), "utf8"));
    await cluster.writeIdent(text);
    const maps = [...new Set(rows.map((r) => r[1]))];
    const hba = maps.map((m, i) => `hostssl db${i} all 127.0.0.1/32 cert${m === "-" ? "" : ` map=${m}`}`).join("\n");
    for (const [i] of maps.entries()) await cluster.sql.unsafe(`create database db${i}`);
    await cluster.writeHba(`${hba}\n`, { reload: true });
  });
  after(async () => {
    await cluster?.stop();
    if (pki) rmSync(pki, { recursive: true, force: true });
  });

  /** Whether PostgreSQL lets `user` in with a certificate for `system` through the line for `map`. */
  async function postgresAllows(map: string, system: string, user: string): Promise<boolean> {
    const maps = [...new Set(rows.map((r) => r[1]))];
    const { cert, key } = certFor(system);
    const sql = postgres({ host: "127.0.0.1", port: cluster.port, user, database: `db${maps.indexOf(map)}`, max: 1, ssl: { cert, key, rejectUnauthorized: false }, onnotice: () => {}, connect_timeout: 10 });
    try {
      await sql`select 1`;
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === "28000") return false;
      throw err;
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  test("every golden decision is PostgreSQL's, and hbagate's", async () => {
    const ident = loadIdent(join(golden, "pg_ident.conf"), fileSource);
    const env = { isMember: membershipFromGraph(roles) };
    const problems: string[] = [];
    for (const [expected, map, system, user] of rows) {
      const theirs = (await postgresAllows(map, system, user)) ? "allow" : "deny";
      const ours = (await identAllows(ident, map === "-" ? undefined : map, system, user, env)) ? "allow" : "deny";
      if (theirs !== expected || ours !== expected) problems.push(`${map} | ${system} | ${user}: PostgreSQL ${theirs}, hbagate ${ours}, table ${expected}`);
    }
    assert.deepEqual(problems, []);
  });
});
