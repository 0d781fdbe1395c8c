import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { createApp } from "../../lib/http/app.ts";
import { testDeps, testPools } from "../http/deps.ts";
import { parseVerifierFile, type VerifierFile } from "../../lib/auth/verifier-file.ts";

describe("brute-force brake", () => {
  test("slows down after slowAfter failures, locks out after lockAfter, for lockMs", async () => {
    let now = 0;
    const l = new FailureLimiter({ slowAfter: 2, lockAfter: 4, windowMs: 10_000, lockMs: 5_000, delayStepMs: 30, maxDelayMs: 60, maxEntries: 10, now: () => now });
    const timed = async () => {
      const t = Date.now();
      await l.failed("10.0.0.1", "alice");
      return Date.now() - t;
    };
    assert.ok((await timed()) < 20);
    assert.ok((await timed()) < 20);
    assert.ok((await timed()) >= 25, "third failure is slowed");
    assert.equal(l.check("10.0.0.1", "alice"), undefined);
    await timed();
    const locked = l.check("10.0.0.1", "alice");
    assert.equal(locked?.code, "08004");
    assert.match(locked?.fields.hint ?? "", /5 s/);
    assert.equal(l.check("10.0.0.2", "alice"), undefined, "another address is unaffected");
    assert.equal(l.check("10.0.0.1", "bob"), undefined, "another user is unaffected");
    now += 5_001;
    assert.equal(l.check("10.0.0.1", "alice"), undefined, "the cooling-off period ends");
  });

  test("a success clears the record; old failures fall out of the window", async () => {
    let now = 0;
    const l = new FailureLimiter({ slowAfter: 10, lockAfter: 2, windowMs: 1000, lockMs: 5_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 10, now: () => now });
    await l.failed("a", "u");
    l.succeeded("a", "u");
    await l.failed("a", "u");
    assert.equal(l.check("a", "u"), undefined);
    now += 1001;
    await l.failed("a", "u");
    assert.equal(l.check("a", "u"), undefined, "the first failure had expired");
  });

  test("through the gateway: locked out with 429 08004 even with the right password; other users unaffected", async () => {
    const pools = testPools(1);
    const file: VerifierFile = parseVerifierFile("/v", '"alice" "right-one"\n"bob" "bobs-pw"\n');
    const limiter = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 10 });
    // A verifier file and a role credential keep the upstream out of it; the query itself will fail (no server), which is fine.
    const app = createApp(testDeps(pools, "host all all all password\n", { verifierFile: () => file, failureLimiter: limiter }));
    const ask = async (user: string, password: string) => {
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64") }, body: '{"query":"select 1"}' });
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask("alice", "guess"), { status: 401, code: "28P01" });
    assert.deepEqual(await ask("alice", "right-one"), { status: 429, code: "08004" });
    // bob verifies fine (then meets the absent upstream: 503, not 401 or 429).
    assert.equal((await ask("bob", "bobs-pw")).status, 503);
    await pools.close();
  });
});
