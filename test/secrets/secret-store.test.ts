import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseSecretReference, selectValue } from "../../lib/secrets/reference.ts";
import { SecretStore, type FetchedSecret } from "../../lib/secrets/secret-store.ts";

function world() {
  let now = 0;
  let version = 1;
  let failing: string | undefined;
  let gate: Promise<void> | undefined;
  const values = new Map<string, string>([["rules", "v1"]]);
  let calls = 0;
  const store = new SecretStore(
    async (id): Promise<FetchedSecret> => {
      calls++;
      if (gate) await gate;
      if (failing) throw new Error(failing);
      const text = values.get(id);
      if (text === undefined) throw new Error("ResourceNotFoundException");
      return { text, versionId: `v${version}` };
    },
    { ttlMs: 1000, refreshAheadMs: 100, backoffMinMs: 50, backoffMaxMs: 400, now: () => now },
  );
  return {
    store,
    calls: () => calls,
    advance: (ms: number) => (now += ms),
    rotate: (text: string) => (values.set("rules", text), version++),
    fail: (reason: string | undefined) => (failing = reason),
    hold: () => {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return () => ((gate = undefined), release());
    },
  };
}

describe("secret store", () => {
  test("cache hits cost no call; concurrent first requests share one", async () => {
    const w = world();
    const release = w.hold();
    const all = Promise.all(Array.from({ length: 20 }, () => w.store.get("rules")));
    release();
    assert.deepEqual(new Set(await all), new Set(["v1"]));
    assert.equal(w.calls(), 1);
    for (let i = 0; i < 10; i++) await w.store.get("rules");
    assert.equal(w.calls(), 1);
    w.store.close();
  });

  test("after the TTL the old value is served while a refresh brings the new one", async () => {
    const w = world();
    await w.store.get("rules");
    w.rotate("v2");
    w.advance(1001);
    assert.equal(await w.store.get("rules"), "v1", "no request waits for the refresh");
    await new Promise((r) => setImmediate(r));
    assert.equal(await w.store.get("rules"), "v2");
    w.store.close();
  });

  test("outages serve the last good value and say so; with no value ever, fail closed (08001)", async () => {
    const w = world();
    await w.store.get("rules");
    w.fail("ThrottlingException: Rate exceeded");
    w.advance(2000);
    assert.equal(await w.store.get("rules"), "v1");
    await w.store.refresh("rules");
    assert.match(w.store.status(), /^ok \(stale: rules: ThrottlingException/);
    await assert.rejects(w.store.get("never-fetched"), (e: { code?: string }) => e.code === "08001");
    assert.match(w.store.status(), /^unavailable: never-fetched/);
    w.fail(undefined);
    await w.store.refresh("rules");
    await w.store.refresh("never-fetched").catch(() => {});
    w.store.close();
  });

  test("listeners hear about new versions, not about the first fetch or an unchanged one", async () => {
    const w = world();
    const heard: string[] = [];
    w.store.onChange((id, v) => heard.push(`${id}:${v.text}`));
    await w.store.get("rules");
    await w.store.refresh("rules");
    w.rotate("v2");
    await w.store.refresh("rules");
    assert.deepEqual(heard, ["rules:v2"]);
    w.store.close();
  });

  test("references: name or ARN, optional JSON key", () => {
    assert.deepEqual(parseSecretReference("secretsmanager:prod/rules"), { secretId: "prod/rules", key: undefined, text: "secretsmanager:prod/rules" });
    const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gw-AbCdEf";
    assert.equal(parseSecretReference(`secretsmanager:${arn}#hba`).secretId, arn);
    assert.equal(parseSecretReference(`secretsmanager:${arn}#hba`).key, "hba");
    assert.throws(() => parseSecretReference("secretsmanager:#x"), /invalid secret reference/);
    assert.equal(selectValue(parseSecretReference("secretsmanager:s#hba"), '{"hba":"local all all trust"}'), "local all all trust");
    assert.throws(() => selectValue(parseSecretReference("secretsmanager:s#nope"), '{"hba":"x"}'), /no string key "nope"/);
    assert.throws(() => selectValue(parseSecretReference("secretsmanager:s#k"), "not json"), /not a JSON object/);
  });
});
