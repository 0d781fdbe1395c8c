// Red team (claims remembered with the token): the finding handed back is the
// one for exactly these parts, never past its life, never across a clear(),
// never one that began before a clear(), and not mutable by a holder.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { rememberedFinding, type Verifiers } from "../../lib/auth/methods/verifiers.ts";

function setup() {
  let now = 1_000_000;
  const cache = new VerifiedCallers({ ttlMs: 60_000, maxEntries: 100, now: () => now });
  // The epoch as each check starts (a request's snapshot, taken just before it).
  return { cache, verifiers: { cache, get epoch() { return cache.epoch; } } as unknown as Verifiers, tick: (ms: number) => (now += ms) };
}

describe("red: remembered findings", () => {
  test("another token, user, line or method never gets this finding", async () => {
    const { verifiers } = setup();
    await rememberedFinding(verifiers, ["f", "1", "oauth", "alice"], "tokA", async () => ({ found: { claims: { sub: "alice" } }, forMs: 30_000 }));
    for (const parts of [["f", "1", "oauth", "bob", "tokA"], ["f", "2", "oauth", "alice", "tokA"], ["f", "1", "oauth", "alice", "tokB"], ["f", "1oauth", "", "alice", "tokA"], ["f", "1", "oauth", "alice", "tokA "]]) {
      let ran = false;
      const got = await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ((ran = true), { found: { claims: { sub: "other" } }, forMs: 30_000 }));
      assert.ok(ran, `cached finding served for ${JSON.stringify(parts)}`);
      assert.deepEqual(got, { claims: { sub: "other" } });
    }
  });

  test("not past the token's life (1 ms after it), and not across a clear()", async () => {
    const { verifiers, tick, cache } = setup();
    const parts = ["f", "1", "oauth", "alice", "tok"];
    await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ({ found: { claims: { n: 1 } }, forMs: 5_000 }));
    tick(4_999);
    let ran = false;
    await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ((ran = true), { found: { claims: { n: 2 } }, forMs: 1 }));
    assert.equal(ran, false, "re-verified within its life");
    // lru-cache holds an entry while age <= ttl: at exactly exp it is still served (inside jose's
    // leeway, which a fresh verification would grant too); 1 ms later it must not be.
    tick(2);
    ran = false;
    await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ((ran = true), { found: { claims: { n: 3 } }, forMs: -1 }));
    assert.ok(ran, "an expired token's finding was served");
    await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ({ found: { claims: { n: 4 } }, forMs: 10_000 }));
    cache.clear();
    ran = false;
    await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ((ran = true), { found: { claims: { n: 5 } }, forMs: 10_000 }));
    assert.ok(ran, "served across a clear()");
  });

  test("a verification in flight across a clear() is not remembered", async () => {
    const { verifiers, cache } = setup();
    const parts = ["f", "1", "oauth", "alice", "tok"];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => (await gate, { found: { claims: { old: true } }, forMs: 10_000 }));
    cache.clear();
    release();
    await first;
    let ran = false;
    await rememberedFinding(verifiers, parts.slice(0, -1), parts.at(-1)!, async () => ((ran = true), { found: { claims: { old: false } }, forMs: 10_000 }));
    assert.ok(ran, "a finding from before the reload was served after it");
  });
});
