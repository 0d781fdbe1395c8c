// Two ways past the door a red team found, each against a real PostgreSQL:
// a trust line for the same role wiped the password brake's count, and an
// upstream refusing the request's own login after a verified password told
// the caller the password was right.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { parseVerifierFile } from "../../lib/auth/verifier-file.ts";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

describe("refusals after verification", () => {
  let cluster: Cluster;
  let pools: Pools;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role alice login password 'alice-pw'");
    await cluster.sql.unsafe("create database demo");
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  const ask = async (app: ReturnType<typeof testApp>, db: string, user: string, password: string) => {
    const res = await app.request(`/v1/${db}/sql`, { method: "POST", headers: { "content-type": "application/json", authorization: basic(user, password) }, body: '{"query":"select 1"}' });
    return { status: res.status, body: await res.text() };
  };

  test("a trust line for the same role does not clear the password brake's count", async () => {
    const limiter = new FailureLimiter({ slowAfter: 100, lockAfter: 5, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 100 });
    const app = testApp(pools, "host demo all 10.0.0.1/32 trust\nhost all all 10.0.0.1/32 scram-sha-256\n", { failureLimiter: limiter });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await ask(app, "postgres", "alice", `guess-${i}`)).status);
      // Between guesses, the same role through the trust line (any password, checked by no one).
      await ask(app, "demo", "alice", "whatever");
    }
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.ok(statuses.slice(5).every((s) => s === 429), JSON.stringify(statuses));
    assert.equal((await ask(app, "postgres", "alice", "alice-pw")).status, 429, "locked, even for the right password");
  });

  test("a verified password whose upstream login is refused reads like a wrong one", async () => {
    // carl's password is in the verifier file, but there is no role carl upstream.
    const file = parseVerifierFile("/users.txt", '"carl" "carl-pw"\n');
    const logs: Record<string, unknown>[] = [];
    const app = testApp(pools, "host all all 10.0.0.1/32 scram-sha-256\n", { verifierFile: () => file, log: (e) => logs.push(e) });
    const right = await ask(app, "postgres", "carl", "carl-pw");
    const wrong = await ask(app, "postgres", "carl", "not-it");
    assert.equal(right.status, 401);
    assert.equal(right.body, wrong.body);
    assert.ok(logs.some((e) => e.msg === "the upstream refused the request's login after the caller was verified" && e.user === "carl"));
  });
});
