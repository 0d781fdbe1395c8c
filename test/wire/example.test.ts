// The README's session example (examples/session.mjs), run as a user would run
// it, against a gateway in front of a real PostgreSQL: it must do what it says.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import { run } from "../harness/spawn.ts";

const EXAMPLE = fileURLToPath(new URL("../../examples/session.mjs", import.meta.url));

describe("examples/session.mjs", () => {
  let cluster: Cluster;
  let gw: SessionGateway;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login password 'app-pw'; grant create on schema public to app;");
    await cluster.writeHba("host all app 127.0.0.1/32 scram-sha-256\n", { reload: true });
    gw = await startSessionGateway("host all app 127.0.0.1/32 scram-sha-256\n", cluster.port);
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  test("moves 30 between two accounts in one interactive transaction, then reads the total through Drizzle", async () => {
    const env = { ...process.env, HBAGATE_URL: `ws://${gw.authority}`, DATABASE_URL: "postgresql://app:app-pw@db.example.invalid/postgres" };
    const first = await run(process.execPath, [EXAMPLE], { env, timeoutMs: 30_000 });
    assert.equal(first.code, 0, first.output);
    assert.equal(first.stdout, "moved 30 [ { id: 1, balance: 70 }, { id: 2, balance: 30 } ]\ntotal 100\n");
    const second = await run(process.execPath, [EXAMPLE], { env, timeoutMs: 30_000 });
    assert.equal(second.code, 0, second.output);
    assert.match(second.stdout, /^moved 30 \[ \{ id: 1, balance: 40 \}, \{ id: 2, balance: 60 \} \]\ntotal 100\n$/);
  });
});
