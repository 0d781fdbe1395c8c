// One row larger than any response (a red team found it held whole: the
// budget is taken per row, after the driver has buffered the row, and a
// single 150 MB value peaked at 501 MiB in a function of 256 MB). Each pool
// connection now cuts an answer past the bound its responses imply, from the
// message's announced length, before any of it is held (wire-connection.ts).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { buildHandler, codeAndMemory, functionUrlEvent, invokeInOwnProcess } from "./events.ts";
import { basic } from "../harness/http.ts";

const MiB = 1024 * 1024;

describe("one huge row on Lambda", () => {
  let cluster: Cluster;
  let bundle: string;
  let env: Record<string, string>;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    bundle = await buildHandler();
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, "hostssl all app 0.0.0.0/0 trust\n");
    env = {
      HBAGATE_HBA_FILE: hba,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      HBAGATE_UPSTREAM_SSL: "disable",
    };
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a single 150 MB value: 507, and the process stays well inside a 256 MB function", async () => {
    const event = functionUrlEvent({ query: "select repeat('x', 150000000) as big" }, { headers: { authorization: basic("app") } });
    const out = codeAndMemory(await invokeInOwnProcess(bundle, event, { ...process.env, ...env }, 120_000));
    assert.equal(out.status, 507);
    assert.ok(out.maxRss < 160 * MiB, `peak RSS ${(out.maxRss / MiB).toFixed(0)} MiB (status ${out.status}, ${out.code})`);
  });
});
