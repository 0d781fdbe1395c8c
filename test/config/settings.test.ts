import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIpForTest } from "./ip.ts";
import { settingsFromEnv } from "../../lib/config/settings.ts";

test("defaults come from one table and the result is frozen", () => {
  const s = settingsFromEnv({});
  assert.equal(s.HBAGATE_PORT, 8080);
  assert.equal(s.HBAGATE_LISTEN_HOST, "127.0.0.1");
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("10.0.0.1")), false);
  assert.ok(Object.isFrozen(s));
});

test("every bad variable is named with its value", () => {
  assert.throws(
    () => settingsFromEnv({ HBAGATE_PORT: "abc", HBAGATE_POOL_MAX: "0", HBAGATE_TRUSTED_PROXIES: "10.0.0.0/8,zzz" }),
    (err: Error) =>
      err.message.includes('HBAGATE_PORT="abc"') && err.message.includes('HBAGATE_POOL_MAX="0"') && err.message.includes('invalid trusted proxy "zzz"'),
  );
});

test("trusted proxies parse into a matcher", () => {
  const s = settingsFromEnv({ HBAGATE_TRUSTED_PROXIES: "10.0.0.0/8, ::1" });
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("10.2.3.4")), true);
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("::1")), true);
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("11.0.0.1")), false);
});
