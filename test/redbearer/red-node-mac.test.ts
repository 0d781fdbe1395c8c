// Red team: lib/node/node-mac.ts must be BLAKE2b-512 over hex(key) then the message, for every key and message.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createHash, randomBytes } from "node:crypto";
import { nodeMac } from "../../lib/node/node-mac.ts";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";

const reference = (key: Uint8Array, message: string) => createHash("blake2b512").update(Buffer.from(key).toString("hex")).update(message, "utf8").digest("hex");

describe("red: Node's MAC", () => {
  test("keys of every length around the block, views into larger buffers, and zero keys", () => {
    const messages = ["", "a", "\u0000", "é€😀", "\ud800", "x\udfff\ud83d", "🙂".repeat(100), "z".repeat(55), "z".repeat(56), "z".repeat(64), "z".repeat(119), "z".repeat(120)];
    for (let length = 0; length <= 200; length++) {
      const keys = [randomBytes(length), new Uint8Array(length), new Uint8Array(randomBytes(length + 17).buffer, 9, length)];
      for (const key of keys) {
        const mac = nodeMac(key);
        for (const m of messages) assert.equal(mac(m), reference(key, m), `key of ${length} bytes (offset ${key.byteOffset}), message ${JSON.stringify(m)}`);
      }
    }
  });

  test("a key is read when the MAC is made: later changes to the caller's buffer do not change it", () => {
    const key = randomBytes(32);
    const copy = Buffer.from(key);
    const mac = nodeMac(key);
    key.fill(0);
    assert.equal(mac("m"), reference(copy, "m"));
  });

  test("huge messages and interleaved MACs under different keys", () => {
    const a = randomBytes(32);
    const b = randomBytes(100);
    const ma = nodeMac(a);
    const mb = nodeMac(b);
    const huge = "€".repeat(3_000_000);
    assert.equal(ma(huge), reference(a, huge));
    assert.equal(mb(huge), reference(b, huge));
    for (let i = 0; i < 200; i++) {
      const m = randomBytes(i * 13).toString("latin1");
      assert.equal(ma(m), reference(a, m));
      assert.equal(mb(m), reference(b, m));
    }
  });

  test("verified-caller keys differ for credentials that differ only in lone surrogates or encodings", () => {
    const c = new VerifiedCallers({ ttlMs: 10_000, maxEntries: 10, mac: nodeMac() });
    const context = ["pg_hba.conf", "3", "oauth", "alice"];
    const creds = ["\ud800", "\udc00", "\ufffd", "\u00e9", "e\u0301", "", " "];
    const keys = new Set(creds.map((x) => c.keyFor(context, x)));
    assert.equal(keys.size, creds.length);
    for (const k of keys) for (const x of creds.filter((x) => x.length > 0)) assert.ok(!k.includes(x));
  });
});
