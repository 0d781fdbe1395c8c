// Red team: the payload cache in lib/connection/caller.ts (claimOf).
// Promises attacked: "the cache never stores a credential (no signature)" and
// "bounded to 1,024 entries of at most 4 KiB each".
//
// The cache key is `token.slice(...)`: in V8 a slice of 13+ characters is a
// SlicedString that keeps its whole parent alive, and the token is itself a
// regex capture (a slice) of the Authorization header. So each entry pins the
// entire header: "Bearer <header>.<payload>.<signature>". The signature (the
// credential) stays in the heap as long as the entry, and each entry costs the
// header's size (up to Node's 16 KiB header limit), not the payload's.
// Separately, the decoded object kept per entry can be far larger than its
// 4 KiB of text (deep arrays), so 1,024 "small" entries pin ~90 MB.
// All of it is reachable unauthenticated: the role is read before any line,
// on every gateway (bearerRole is always configured in assemble.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { randomBytes } from "node:crypto";
import { ask, b64, HEADER, heapSnapshotText, settle } from "./role-cache-probe.ts";

/** Entries of no interest ahead of each test's own (the cache is bounded by size since, so this no longer empties it). */
function evict(tag: string): void {
  for (let i = 0; i < 1100; i++) ask(`Bearer ${HEADER}.${b64(`{"role":"${tag}${i}"}`)}.c2ln`);
}

describe("red: the bearer role cache", () => {
  test("a token's signature is not kept in memory by the role cache once the request is gone", async () => {
    evict("a");
    // Signatures exist as bytes only until after the snapshot, so only the gateway could hold their text.
    const cachedSig = randomBytes(64);
    const controlSig = randomBytes(64);
    // A payload that decodes (cached) and one that does not (never cached): the control shows the probe is sound.
    ask(`Bearer ${HEADER}.${b64("{not json, never cached}")}.${controlSig.toString("base64url")}`);
    ask(`Bearer ${HEADER}.${b64(JSON.stringify({ sub: "alice", role: "alice_role" }))}.${cachedSig.toString("base64url")}`);
    ask(`Bearer ${HEADER}.${b64("{also not json}")}.${controlSig.toString("base64url")}`);
    // V8 keeps something of the very last request around (not the cache: it happens to uncached tokens too), so a filler goes last.
    ask(`Bearer ${HEADER}.${b64("{filler}")}.c2lnbmF0dXJlLWZpbGxlcg`);
    settle();
    const heap = await heapSnapshotText();
    assert.equal(heap.includes(controlSig.toString("base64url")), false, "control: a request's token is collected once it is done");
    assert.equal(
      heap.includes(cachedSig.toString("base64url")),
      false,
      "the signature of a token whose role was read is still in the heap: the payload cache's key (a V8 slice) pins the whole Authorization header",
    );
  });

  test("1,024 cached payloads cost about their payloads, not the signatures beside them", () => {
    evict("b");
    settle();
    const before = process.memoryUsage().heapUsed;
    // Tiny payloads; 12 KB signatures (within Node's 16 KiB header limit), sent by anyone.
    for (let i = 0; i < 1024; i++) ask(`Bearer ${HEADER}.${b64(`{"role":"r${i}"}`)}.${randomBytes(9000).toString("base64url")}`);
    settle();
    const retainedMb = (process.memoryUsage().heapUsed - before) / 2 ** 20;
    // 1,024 payloads of ~20 characters: well under 2 MiB however they are kept.
    assert.ok(retainedMb < 2, `1,024 tiny payloads pin ${retainedMb.toFixed(1)} MiB (each entry keeps its whole Authorization header)`);
  });

  test("1,024 payloads of at most 4 KiB pin no more than a few times 4 MiB", () => {
    evict("c");
    settle();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1024; i++) {
      // 3 KB of JSON: ~1,500 nested empty arrays, 4,096 characters base64url.
      const depth = 1500;
      const segment = b64(`{"role":"r${i}","a":${"[".repeat(depth)}${"]".repeat(depth)}}`);
      assert.ok(segment.length <= 4096);
      ask(`Bearer ${HEADER}.${segment}.c2ln`);
    }
    settle();
    const retainedMb = (process.memoryUsage().heapUsed - before) / 2 ** 20;
    // The promised bound is 1,024 × 4 KiB = 4 MiB of payload text; allow 4× that for the decoded form.
    assert.ok(retainedMb < 16, `1,024 payloads of ≤ 4 KiB pin ${retainedMb.toFixed(1)} MiB of decoded objects, unauthenticated`);
  });
});
