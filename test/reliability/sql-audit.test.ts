// What reaches the database, read from PostgreSQL's own statement log: the
// caller's statement text as sent, its values only as bind parameters, on the
// caller's role, plus a fixed set of transaction statements. Nothing the
// gateway builds from request data is spliced into SQL.
import assert from "node:assert/strict";
import { RESET_CHECK, RESET_COMMANDS } from "../../lib/upstream/session-reset.ts";
import { ARRAY_TYPES } from "../../lib/query/typed-values.ts";
import { PROBE, settingStatement } from "../../lib/upstream/session.ts";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { eventually } from "../harness/eventually.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const HOSTILE = "'); drop table victims; --";

describe("SQL audit", () => {
  let cluster: Cluster;
  let pools: Pools;

  before(async () => {
    cluster = await startCluster({ settings: { log_statement: "'all'", log_line_prefix: "'%m [%p] user=%u '" } });
    await cluster.sql.unsafe("create role auditee login; create table victims (id int); grant all on victims to auditee");
    await cluster.writeHba("host all auditee 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  test("only the caller's statements, parameters bound, and fixed transaction control", async () => {
    const app = testApp(pools, "host all all all trust\n");
    const before = (await cluster.readLog()).length;
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      app.request("/v1/postgres/sql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: basic("auditee"), ...headers },
        body: JSON.stringify(body),
      });
    assert.equal((await post({ query: "select $1::text as v", params: [HOSTILE] })).status, 200);
    assert.equal(
      (await post({ queries: [{ query: "insert into victims values ($1)", params: [1] }, { query: "select $1::text", params: [HOSTILE] }] }, { "Neon-Batch-Isolation-Level": "Serializable", "Neon-Batch-Read-Only": "false" })).status,
      200,
    );
    // A startup parameter (application_name in Neon's connection string) is set with bound values too.
    const viaNeon = await app.request("/sql", {
      method: "POST",
      headers: { "content-type": "application/json", "neon-connection-string": `postgresql://auditee@gw.example/postgres?application_name=${encodeURIComponent(HOSTILE)}` },
      body: JSON.stringify({ query: "select current_setting('application_name') as a", params: [] }),
    });
    assert.equal(viaNeon.status, 200);
    assert.deepEqual(((await viaNeon.json()) as { rows: unknown[] }).rows, [[HOSTILE]]);
    // A hostile header value is refused, not spliced.
    assert.equal((await post({ queries: [{ query: "select 1" }] }, { "Neon-Batch-Isolation-Level": `Serializable; drop table victims` })).status, 400);

    const logged = async () => {
      const lines = (await cluster.readLog()).slice(before).split("\n").filter((l) => l.includes("user=auditee") && /(statement|execute [^:]*):/.test(l));
      return { lines, statements: lines.map((l) => l.replace(/^.*?(?:statement|execute [^:]*): /, "").trim()) };
    };
    // Until the batch's COMMIT is in the log (each backend writes its own lines), not a guessed 200 ms.
    await eventually(async () => (await logged()).statements.includes("commit"), { what: "the batch's commit in the server log" });
    const { lines, statements } = await logged();
    assert.ok(statements.length >= 4, JSON.stringify(statements));
    // Besides the caller's: the session reset's statements, the per-request settings, the batch's
    // transaction control, the probe of an idle connection, and a pool's look at its array types.
    const allowed = new Set([
      "select $1::text as v",
      "insert into victims values ($1)",
      "select $1::text",
      "select current_setting('application_name') as a",
      settingStatement(1),
      "begin isolation level serializable",
      "commit",
      ...RESET_COMMANDS,
      RESET_CHECK,
      PROBE,
      ARRAY_TYPES,
    ]);
    for (const s of statements) assert.ok(allowed.has(s), `unexpected statement reached the database: ${s}`);
    // The hostile value never appears as SQL text, only among the bound parameters.
    const log = (await cluster.readLog()).slice(before);
    const hostileLines = log.split("\n").filter((l) => l.includes(HOSTILE));
    // The three statements that carried it must show it: an empty list would prove nothing.
    assert.ok(hostileLines.length >= 3, `the value reached the server ${hostileLines.length} times: ${JSON.stringify(hostileLines)}`);
    for (const line of hostileLines) assert.match(line, /(DETAIL|parameters: )/, line);
    const [{ n } = { n: -1 }] = await cluster.sql<{ n: number }[]>`select count(*)::int as n from victims`;
    assert.equal(n, 1);
  });
});
