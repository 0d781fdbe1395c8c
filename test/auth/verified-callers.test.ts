import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { javascriptMac, VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { createHash, randomBytes } from "node:crypto";
import { nodeMac } from "../../lib/node/node-mac.ts";
import { rememberedFinding, type Verifiers } from "../../lib/auth/methods/verifiers.ts";

describe("verified-caller cache", () => {
  test("remembers for the TTL, then forgets", async () => {
    let now = 1000;
    const c = new VerifiedCallers({ ttlMs: 500, maxEntries: 10, now: () => now });
    const k = c.keyFor(["rule", "db", "alice"], "pw");
    assert.equal(c.has(k), false);
    c.remember(k, c.epoch);
    assert.equal(c.has(k), true);
    now += 499;
    assert.equal(c.has(k), true);
    // Past the TTL (the millisecond at exactly 500 is the cache library's to call).
    now += 2;
    assert.equal(c.has(k), false);
  });

  test("a remembered finding comes back without a second verification, for the verification's own life, and not across a clear()", async () => {
    let now = 1000;
    const cache = new VerifiedCallers({ ttlMs: 60_000, maxEntries: 10, now: () => now });
    // Each request's snapshot takes the cache's epoch as it is then.
    const verifiers = () => ({ cache, epoch: cache.epoch }) as unknown as Verifiers;
    let verified = 0;
    const check = (token: string, forMs: number) =>
      rememberedFinding(verifiers(), ["rule", "alice"], token, async () => ({ found: { claims: { sub: token }, n: ++verified }, forMs }));
    const first = await check("token-a", 500);
    assert.deepEqual(first, { claims: { sub: "token-a" }, n: 1 });
    assert.equal(await check("token-a", 500), first, "the second request verified again");
    assert.equal((await check("token-b", 500)).n, 2, "another token was taken for the first");
    now += 501;
    assert.equal((await check("token-a", 500)).n, 3, "a finding outlived its token");
    // A verification under way when the cache is cleared (a reload) is not remembered.
    const slow = rememberedFinding(verifiers(), ["rule", "alice"], "token-c", async () => {
      cache.clear();
      return { found: { n: ++verified }, forMs: 500 };
    });
    assert.equal((await slow).n, 4);
    assert.equal((await check("token-c", 500)).n, 5);
  });

  test("the JavaScript MAC is HMAC-SHA-256 (RFC 4231, test case 2)", () => {
    const key = new TextEncoder().encode("Jefe");
    assert.equal(javascriptMac(key)("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  test("Node's MAC is BLAKE2b-512 over the key as hex and the message, for any key and message; HMAC-SHA-256 where hash() is missing", () => {
    // A known answer, worked out apart from the code under test: BLAKE2b-512 of "4a656665" (Jefe) then the message.
    const jefe = new TextEncoder().encode("Jefe");
    assert.equal(nodeMac(jefe)("what do ya want for nothing?"), createHash("blake2b512").update("4a656665what do ya want for nothing?").digest("hex"));
    // The same key, message after message: each as createHash has it.
    const key = randomBytes(32);
    const mac = nodeMac(key);
    const alphabet = ["a", "é", "€", "😀", "\u0000", '"', "."];
    for (let i = 0; i < 300; i++) {
      const length = i < 140 ? i : Math.floor(Math.random() * 4000);
      const message = Array.from({ length }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join("");
      assert.equal(mac(message), createHash("blake2b512").update(key.toString("hex")).update(message, "utf8").digest("hex"), `message of ${length} characters`);
    }
    // Without the one-shot hash (Node before 20.12), or without BLAKE2b: RFC 4231's HMAC-SHA-256.
    assert.equal(nodeMac(jefe, null)("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    const noBlake = (algorithm: string, data: string, encoding: "hex") => {
      if (algorithm === "blake2b512") throw new Error("digest not supported");
      return createHash(algorithm).update(data).digest(encoding);
    };
    assert.equal(nodeMac(jefe, noBlake)("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  for (const [name, mac] of [["JavaScript", javascriptMac], ["node:crypto", nodeMac]] as const) {
    test(`keys differ by every part and never contain the password (${name} MAC)`, async () => {
      const c = new VerifiedCallers({ ttlMs: 500, maxEntries: 10, mac: mac() });
      const a = c.keyFor(["r", "db", "alice"], "secret-password");
      const b = c.keyFor(["r", "db", "alice"], "secret-passwore");
      const d = c.keyFor(["r", "db2", "alice"], "secret-password");
      assert.notEqual(a, b);
      assert.notEqual(a, d);
      assert.equal(a, c.keyFor(["r", "db", "alice"], "secret-password"));
      assert.match(a, /^[0-9a-f]{64}([0-9a-f]{64})?$/);
      // Another process (another random key) cannot recompute the same key.
      assert.notEqual(a, new VerifiedCallers({ ttlMs: 500, maxEntries: 10, mac: mac() }).keyFor(["r", "db", "alice"], "secret-password"));
    });
  }

  test("no two (context, secret) pairs share a key, however the secret begins or the context ends", () => {
    // The MAC's message is the context's JSON then the secret: pairs that would run together in a
    // plainer joining (a secret that looks like the end of the context, a context part holding
    // what looks like JSON, empty parts) must all stay apart.
    const c = new VerifiedCallers({ ttlMs: 500, maxEntries: 10, mac: (m) => m });
    const pairs: [string[], string][] = [
      [["r", "alice"], "pw"],
      [["r", "alice"], '"]pw'],
      [["r", 'alice"]'], "pw"],
      [["r", 'alice","pw'], ""],
      [["r", "alice", "pw"], ""],
      [["r", "alice", ""], "pw"],
      [["r", "alicepw"], ""],
      [["r"], '"alice"]pw'],
      [["r", "alice"], "]pw"],
      [["r", "alice]"], "pw"],
      [["r", "alice\\"], "pw"],
      [["r", "alice"], "\\pw"],
      [[], '["r","alice"]pw'],
      [["r", "alice"], "p\u0000w"],
      [["r", "alice\u0000p"], "w"],
      // The MAC encodes its message as UTF-8, where a lone surrogate is U+FFFD like any other.
      [["r", "alice"], "\ud800"],
      [["r", "alice"], "\udc00"],
      [["r", "alice"], "\ufffd"],
      [["r", "alice"], '"\\ud800"'],
      [["r", "alice"], '~"\\ud800"'],
      [["r", "alice"], "=\ud800"],
    ];
    const keys = pairs.map(([context, secret]) => c.keyFor(context, secret));
    assert.equal(new Set(keys).size, pairs.length, keys.join("\n"));
    // And the message is the context's JSON then the secret, as the comment says (recoverable: parse the array, the rest is the secret).
    const utf8 = (m: string) => Buffer.from(m, "utf8").toString("hex");
    assert.equal(new Set(keys.map(utf8)).size, pairs.length, "two messages are the same bytes once encoded as UTF-8");
    // The message is the context's JSON, then the secret marked as written as it is, or as JSON when it is not well-formed.
    assert.equal(keys[0], '["r","alice"]=pw');
    assert.equal(keys[pairs.length - 6], '["r","alice"]~"\\ud800"');
  });

  test("is bounded, oldest out first, and clear() empties it", async () => {
    const c = new VerifiedCallers({ ttlMs: 10_000, maxEntries: 2 });
    const [k1, k2, k3] = ["1", "2", "3"].map((p) => c.keyFor(["r"], p));
    c.remember(k1!, c.epoch);
    c.remember(k2!, c.epoch);
    c.remember(k3!, c.epoch);
    assert.equal(c.size, 2);
    assert.equal(c.has(k1!), false);
    assert.equal(c.has(k3!), true);
    c.clear();
    assert.equal(c.has(k3!), false);
  });

  test("a TTL of 0 remembers nothing", async () => {
    const c = new VerifiedCallers({ ttlMs: 0, maxEntries: 2 });
    const k = c.keyFor(["r"], "x");
    c.remember(k, c.epoch);
    assert.equal(c.has(k), false);
  });
});

describe("verified-caller cache across a reload", () => {
  test("a verification that began before clear() is not remembered after it (the line it was checked under may have changed)", () => {
    const c = new VerifiedCallers({ ttlMs: 10_000, maxEntries: 10 });
    const k = c.keyFor(["pg_hba.conf", "1", "oauth", "app"], "token");
    const epoch = c.epoch;
    c.clear(); // a reload while the check was under way
    c.remember(k, epoch);
    assert.equal(c.has(k), false);
    c.remember(k, c.epoch);
    assert.equal(c.has(k), true);
  });
});
