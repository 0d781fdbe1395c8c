// Password lines verified by logging in upstream (no verifier file): an
// unknown user and a known user with a wrong password get the same answer
// and cost about the same. Not a benchmark: it guards a design property, that
// the gateway has no early return for unknown users (both go to the upstream,
// whose SCRAM mock authentication makes an unknown role cost what a real one
// does). Medians of interleaved samples, compared with a generous factor.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const ROUNDS = 20;
/** How far apart the two medians may be (either way). */
const FACTOR = 3;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

describe("unknown user vs wrong password, verified by upstream login", () => {
  let cluster: Cluster;
  let pools: Pools;

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("set password_encryption = 'scram-sha-256'; create role alice login password 'right-password'");
    await cluster.writeHba("host all all 127.0.0.1/32 scram-sha-256\n", { reload: true });
    pools = testPools(cluster.port);
  });
  after(async () => {
    await pools?.close();
    await cluster?.stop();
  });

  test("the same status and body, and timing distributions that overlap", async (t) => {
    // No cache of verified callers, no failure brake (testDeps): every request logs in upstream.
    const app = testApp(pools, "host all all all scram-sha-256\n");
    const ask = async (user: string, password: string) => {
      const started = process.hrtime.bigint();
      const res = await app.request("/v1/postgres/sql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: basic(user, password) },
        body: '{"query":"select 1"}',
      });
      const body = await res.text();
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // The user's own name is in PostgreSQL's wording; anything else must be the same.
      return { status: res.status, body: body.replaceAll(user, "<user>"), headers: JSON.stringify([...res.headers].filter(([k]) => k !== "date")), ms };
    };
    assert.equal((await ask("alice", "right-password")).status, 200, "the known user's right password works");
    // Warm-up of both paths (module loading, first connections), not counted.
    await ask("alice", "wrong-password");
    await ask("nobody", "wrong-password");
    const wrong: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved, in alternating order, so that load on the machine falls on both alike.
      const pair = i % 2 ? [["nobody", unknown], ["alice", wrong]] as const : [["alice", wrong], ["nobody", unknown]] as const;
      const answers = [];
      for (const [user, times] of pair) {
        const a = await ask(user, `wrong-${i}`);
        times.push(a.ms);
        answers.push(a);
      }
      const [x, y] = answers;
      assert.deepEqual([x!.status, x!.body, x!.headers], [y!.status, y!.body, y!.headers], "the two answers are identical");
      assert.equal(x!.status, 401);
    }
    const [mw, mu] = [median(wrong), median(unknown)];
    t.diagnostic(`median ms: wrong password ${mw.toFixed(1)}, unknown user ${mu.toFixed(1)}`);
    assert.ok(mu * FACTOR >= mw && mw * FACTOR >= mu, `medians within a factor ${FACTOR}: wrong password ${mw.toFixed(1)} ms, unknown user ${mu.toFixed(1)} ms`);
  });
});
