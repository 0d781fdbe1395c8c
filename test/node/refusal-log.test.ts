// A refused verification always leaves one log line saying which path refused
// (the verifier file, an upstream login, the directory, …) and why, never the
// password: the caller is told only PostgreSQL's words (28P01 for a wrong
// password and an unknown user alike), so the operator must learn the rest here.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic, postSqlTo } from "../harness/http.ts";

const dir = mkdtempSync(join(tmpdir(), "hbagate-refusal-log-"));
const PASSWORD = "right-horse-battery";

async function refusedLine(gateway: RunningGateway, logs: LogEvent[], user: string, password: string): Promise<LogEvent> {
  const before = logs.length;
  const res = await postSqlTo(gateway.urls[0]!, '{"query":"select 1"}', { headers: { authorization: basic(user, password) } });
  assert.equal(res.status, 401, JSON.stringify(res.body));
  const lines = logs.slice(before).filter((l) => l.msg === "authentication failed");
  assert.equal(lines.length, 1, JSON.stringify(logs.slice(before)));
  assert.ok(!JSON.stringify(logs.slice(before)).includes(password), "the password is never logged");
  return lines[0]!;
}

describe("a refused password: which path refused it and why", () => {
  test("the verifier file: no entry, a stored form the line cannot use, a wrong password", async () => {
    const hba = join(dir, "hba.conf");
    writeFileSync(hba, "host all all 127.0.0.1/32 scram-sha-256\n");
    const users = join(dir, "users.txt");
    // "old" is stored as an MD5 hash, which scram-sha-256 never accepts (PostgreSQL's rule).
    writeFileSync(users, `"dev" "${PASSWORD}"\n"old" "md5${"0".repeat(32)}"\n`);
    const logs: LogEvent[] = [];
    const gateway = await startNodeGateway(nodeSettings({ HBAGATE_HBA_FILE: hba, HBAGATE_VERIFIER_FILE: users }), logs);
    try {
      const unknown = await refusedLine(gateway, logs, "nobody", "some-guess-1");
      assert.equal(unknown.path, "verifier file");
      assert.match(String(unknown.reason), /no entry for "nobody"/);
      const md5 = await refusedLine(gateway, logs, "old", "some-guess-2");
      assert.equal(md5.path, "verifier file");
      assert.match(String(md5.reason), /MD5.*scram-sha-256/);
      const wrong = await refusedLine(gateway, logs, "dev", "some-guess-3");
      assert.equal(wrong.path, "verifier file");
      assert.match(String(wrong.reason), /does not match/);
      assert.equal(wrong.method, "scram-sha-256");
    } finally {
      await gateway.close();
    }
  });

  describe("an upstream login", { skip: flavorMissing("debian") }, () => {
    let cluster: Cluster;
    let gateway: RunningGateway;
    const logs: LogEvent[] = [];
    before(async () => {
      cluster = await startCluster();
      await cluster.sql.unsafe(`create role app login password '${PASSWORD}'`);
      await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
      const hba = join(dir, "upstream.conf");
      writeFileSync(hba, "host all all 127.0.0.1/32 scram-sha-256\n");
      gateway = await startNodeGateway(nodeSettings({ HBAGATE_HBA_FILE: hba }, cluster.port), logs);
    });
    after(async () => {
      await gateway?.close();
      await cluster?.stop();
    });

    test("a wrong password and an unknown role each say the upstream refused the login, with its SQLSTATE", async () => {
      for (const user of ["app", "nosuchrole"]) {
        const line = await refusedLine(gateway, logs, user, "some-guess-4");
        assert.equal(line.path, "upstream login");
        assert.match(String(line.reason), /28P01/);
      }
    });
  });
});
