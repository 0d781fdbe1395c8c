import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { testPools } from "../http/deps.ts";
import { parseVerifierFile, type VerifierFile } from "../../lib/auth/verifier-file.ts";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

describe("brute-force brake", () => {
  test("slows down after slowAfter failures, locks out after lockAfter, for lockMs", async () => {
    let now = 0;
    const l = new FailureLimiter({ slowAfter: 2, lockAfter: 4, windowMs: 10_000, lockMs: 5_000, delayStepMs: 30, maxDelayMs: 60, maxEntries: 10, now: () => now });
    // Not slowed: the answer is ready at once, before any timer could run (checked by
    // order, not by a wall-clock bound a loaded machine could miss). Slowed: it waits
    // at least the delay (a lower bound, which timers keep however busy the machine).
    const timed = async () => {
      const t = Date.now();
      const p = l.failed("10.0.0.1", "alice");
      let done = false;
      void p.then(() => (done = true));
      await new Promise((r) => setImmediate(r));
      const atOnce = done;
      await p;
      return { atOnce, ms: Date.now() - t };
    };
    assert.ok((await timed()).atOnce, "first failure is not slowed");
    assert.ok((await timed()).atOnce, "second failure is not slowed");
    const third = await timed();
    assert.ok(!third.atOnce && third.ms >= 25, `third failure is slowed: ${JSON.stringify(third)}`);
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

  test("counters past the bound: the least recently failed is forgotten first, not the oldest created", async () => {
    const now = 0;
    const l = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 2, now: () => now });
    await l.failed("10.0.0.1", "a");
    await l.failed("10.0.0.1", "b");
    await l.failed("10.0.0.1", "a"); // a is now the most recently failed
    await l.failed("10.0.0.1", "c"); // evicts b, not a
    assert.equal(l.sizes().counters, 2);
    await l.failed("10.0.0.1", "a"); // a's third failure: its count was kept, so it locks
    assert.equal(l.check("10.0.0.1", "a")?.code, "08004");
    await l.failed("10.0.0.1", "b");
    await l.failed("10.0.0.1", "b"); // b was forgotten: two failures, not three
    assert.equal(l.check("10.0.0.1", "b"), undefined);
  });

  test("a flood of 120,000 junk names never evicts a lock, and memory stays bounded", async () => {
    let now = 0;
    const l = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 1000, maxLocks: 100, now: () => now });
    for (let i = 0; i < 3; i++) await l.failed("10.0.0.1", "test1");
    assert.equal(l.check("10.0.0.1", "test1")?.code, "08004");
    for (let i = 0; i < 120_000; i++) {
      await l.failed(i % 2 ? "10.0.0.1" : `10.1.${i >> 8 & 255}.${i & 255}`, `junk-${i}`);
      now += 0.1;
    }
    assert.equal(l.check("10.0.0.1", "test1")?.code, "08004", "still locked after the flood");
    const sizes = l.sizes();
    assert.ok(sizes.counters <= 1000, `counters ${sizes.counters}`);
    assert.equal(sizes.locks, 1);
    assert.equal(sizes.overflowActive, false);
    now = 60_001;
    assert.equal(l.check("10.0.0.1", "test1"), undefined, "the lock ends when it ends, not before");
  });

  test("a full lock table overflows into buckets: every lock holds for its whole period, memory stays bounded", async () => {
    let now = 0;
    const l = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 1000, maxLocks: 100, overflowSlots: 4096, now: () => now });
    // 2,000 pairs locked: 100 fit the table, 1,900 go to the buckets.
    for (let i = 0; i < 2000; i++) for (let j = 0; j < 3; j++) await l.failed("10.0.0.1", `user-${i}`);
    const sizes = l.sizes();
    assert.equal(sizes.locks, 100);
    assert.ok(sizes.counters <= 1000);
    assert.equal(sizes.overflowActive, true);
    now = 59_999;
    for (let i = 0; i < 2000; i++) assert.equal(l.check("10.0.0.1", `user-${i}`)?.code, "08004", `user-${i}`);
    // The price of a full table: some pairs that share a bucket are refused too (fail closed), not all of them.
    let bystanders = 0;
    for (let i = 0; i < 1000; i++) if (l.check("10.0.0.2", `bystander-${i}`)) bystanders++;
    assert.ok(bystanders > 0 && bystanders < 1000, `${bystanders} of 1000 bystanders refused`);
    now = 60_001;
    for (let i = 0; i < 2000; i += 97) assert.equal(l.check("10.0.0.1", `user-${i}`), undefined);
    // Expired locks make room again: the next lock is exact, the buckets are cleared.
    for (let j = 0; j < 3; j++) await l.failed("10.0.0.1", "late");
    assert.equal(l.check("10.0.0.1", "late")?.code, "08004");
    assert.equal(l.sizes().overflowActive, false);
  });

  test("a failure within the window after a lock ends locks again at once", async () => {
    let now = 0;
    const l = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 10_000, lockMs: 5_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 10, now: () => now });
    for (let i = 0; i < 3; i++) await l.failed("a", "u");
    now = 5_001;
    assert.equal(l.check("a", "u"), undefined);
    await l.failed("a", "u");
    assert.equal(l.check("a", "u")?.code, "08004");
  });

  test("through the gateway: locked out with 429 08004 even with the right password; other users unaffected", async () => {
    const pools = testPools(1);
    const file: VerifierFile = parseVerifierFile("/v", '"alice" "right-one"\n"bob" "bobs-pw"\n');
    const limiter = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 10 });
    // A verifier file and a role credential keep the upstream out of it; the query itself will fail (no server), which is fine.
    const app = testApp(pools, "host all all all password\n", { verifierFile: () => file, failureLimiter: limiter });
    const ask = async (user: string, password: string) => {
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic(user, password) }, body: '{"query":"select 1"}' });
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask("alice", "guess"), { status: 401, code: "28P01" });
    assert.deepEqual(await ask("alice", "right-one"), { status: 429, code: "08004" });
    // bob verifies fine (then meets the absent upstream: 503, not 401 or 429).
    assert.equal((await ask("bob", "bobs-pw")).status, 503);
    await pools.close();
  });

  test("password lines key on the role name exactly: Alice and alice are two roles, two records", async () => {
    const pools = testPools(1);
    const file: VerifierFile = parseVerifierFile("/v", '"alice" "lower-pw"\n"Alice" "upper-pw"\n');
    const limiter = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 10 });
    const app = testApp(pools, "host all all all scram-sha-256\n", { verifierFile: () => file, failureLimiter: limiter });
    const ask = async (user: string, password: string) => {
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic(user, password) }, body: '{"query":"select 1"}' });
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask("alice", "guess"), { status: 401, code: "28P01" });
    assert.deepEqual(await ask("alice", "lower-pw"), { status: 429, code: "08004" });
    // Alice verifies (then meets the absent upstream): her record is her own.
    assert.equal((await ask("Alice", "upper-pw")).status, 503);
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask("Alice", "guess"), { status: 401, code: "28P01" });
    assert.deepEqual(await ask("Alice", "upper-pw"), { status: 429, code: "08004" });
    await pools.close();
  });

  test("other addresses of the same client share its lock: an IPv6 /64, IPv4-mapped IPv6, forged X-Forwarded-For", async () => {
    const pools = testPools(1);
    const file: VerifierFile = parseVerifierFile("/v", '"alice" "right-one"\n');
    const limiter = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 10 });
    let peer: PeerInfo = { transport: "host", address: "2001:db8:1:2::1", encrypted: false };
    // No trusted proxy: X-Forwarded-For is the caller's own word and must change nothing.
    const app = testApp(pools, "host all all all password\n", { verifierFile: () => file, failureLimiter: limiter, peer: () => peer });
    const ask = async (address: string, headers: Record<string, string> = {}, password = "right-one") => {
      peer = { transport: "host", address, encrypted: false };
      const res = await app.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic("alice", password), ...headers }, body: '{"query":"select 1"}' });
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask(`2001:db8:1:2::${i + 1}`, {}, "guess"), { status: 401, code: "28P01" });
    for (const address of ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2:abcd::9"]) {
      assert.deepEqual(await ask(address), { status: 429, code: "08004" }, address);
    }
    assert.equal((await ask("2001:db8:1:3::1")).status, 503, "the next /64 is someone else");
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask("10.0.0.1", {}, "guess"), { status: 401, code: "28P01" });
    assert.deepEqual(await ask("::ffff:10.0.0.1"), { status: 429, code: "08004" });
    assert.deepEqual(await ask("10.0.0.1", { "x-forwarded-for": "10.9.9.9" }), { status: 429, code: "08004" });
    assert.deepEqual(await ask("10.0.0.1", { "x-forwarded-for": "10.9.9.9, 10.0.0.2" }), { status: 429, code: "08004" });
    assert.equal((await ask("10.0.0.2")).status, 503, "another IPv4 address is someone else");
    await pools.close();
  });
});
