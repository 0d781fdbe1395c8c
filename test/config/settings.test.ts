import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIpForTest } from "./ip.ts";
import { loadSettings, SETTING_KEYS } from "../../lib/config/settings.ts";

test("defaults come from one table and the result is frozen", () => {
  const s = loadSettings({});
  assert.equal(s.HBAGATE_PORT, 8080);
  assert.equal(s.HBAGATE_LISTEN_HOST, "127.0.0.1");
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("10.0.0.1")), false);
  assert.ok(Object.isFrozen(s));
});

test("every bad variable is named with its value", () => {
  assert.throws(
    () => loadSettings({ HBAGATE_PORT: "abc", HBAGATE_POOL_MAX: "0", HBAGATE_TRUSTED_PROXIES: "10.0.0.0/8,zzz" }),
    (err: Error) =>
      err.message.includes('HBAGATE_PORT="abc"') && err.message.includes('HBAGATE_POOL_MAX="0"') && err.message.includes('invalid trusted proxy "zzz"'),
  );
});

test("a numeric setting is a decimal number: blank, hexadecimal or exponent spellings are refused by name, not read as 0 or something else", () => {
  // Every setting that reads "7" or "2000" as that number is a numeric one.
  const numeric: [string, string][] = [];
  for (const key of SETTING_KEYS) {
    for (const value of ["7", "2000", "1"]) {
      let read: unknown;
      try {
        read = (loadSettings({ [key]: value }) as unknown as Record<string, unknown>)[key];
      } catch {
        continue;
      }
      if (read === Number(value)) {
        numeric.push([key, value]);
        break;
      }
    }
  }
  assert.ok(numeric.length >= 40, `only ${numeric.length} numeric settings found`);
  for (const [key, value] of numeric) {
    assert.equal((loadSettings({ [key]: ` ${value}\n` }) as unknown as Record<string, unknown>)[key], Number(value), `${key}: blanks around a number`);
    for (const bad of ["", " ", `0x${value}`, `${value}e0`, "0b1", "Infinity"]) {
      assert.throws(() => loadSettings({ [key]: bad }), (err: Error) => err.message.includes(`${key}=${JSON.stringify(bad)}`), `${key}=${JSON.stringify(bad)} was accepted`);
    }
  }
});

test("trusted proxies parse into a matcher", () => {
  const s = loadSettings({ HBAGATE_TRUSTED_PROXIES: "10.0.0.0/8, ::1" });
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("10.2.3.4")), true);
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("::1")), true);
  assert.equal(s.HBAGATE_TRUSTED_PROXIES.contains(parseIpForTest("11.0.0.1")), false);
});

test("PORT sets the HTTP port unless HBAGATE_PORT does", () => {
  assert.equal(loadSettings({ PORT: "9090" }).HBAGATE_PORT, 9090);
  assert.equal(loadSettings({ PORT: "9090", HBAGATE_PORT: "7070" }).HBAGATE_PORT, 7070);
});

test("a JSON config file supplies settings; the environment overrides it; unknown keys are errors", () => {
  const files: Record<string, string> = {
    "/etc/hbagate.json": JSON.stringify({ HBAGATE_PORT: 6060, HBAGATE_POOL_MAX: 3, HBAGATE_CORS_ORIGINS: "https://a.example" }),
    "/etc/bad.json": JSON.stringify({ HBAGATE_PORTT: 1, HBAGATE_POOL_MAX: [1] }),
  };
  const read = (p: string) => files[p] ?? (() => { throw new Error("ENOENT"); })();
  const s = loadSettings({ HBAGATE_CONFIG: "/etc/hbagate.json", HBAGATE_POOL_MAX: "5" }, read);
  assert.equal(s.HBAGATE_PORT, 6060);
  assert.equal(s.HBAGATE_POOL_MAX, 5);
  assert.deepEqual(s.HBAGATE_CORS_ORIGINS, ["https://a.example"]);
  assert.throws(() => loadSettings({ HBAGATE_CONFIG: "/etc/bad.json" }, read), (e: Error) => /unknown setting "HBAGATE_PORTT"/.test(e.message) && /HBAGATE_POOL_MAX must be/.test(e.message));
  assert.throws(() => loadSettings({ HBAGATE_CONFIG: "/etc/missing.json" }, read), /HBAGATE_CONFIG="\/etc\/missing.json"/);
});

test("TLS needs both the certificate and the key", () => {
  assert.throws(() => loadSettings({ HBAGATE_TLS_CERT_FILE: "/c.pem" }), /go together/);
});

test("browser settings: origins are normalised, allowed hosts parsed; bad entries are named with the setting", () => {
  const s = loadSettings({ HBAGATE_CORS_ORIGINS: "https://App.example/", HBAGATE_ALLOWED_HOSTS: "db.example.com, *.apps.example.com" });
  assert.deepEqual(s.HBAGATE_CORS_ORIGINS, ["https://app.example"]);
  assert.deepEqual([...s.HBAGATE_ALLOWED_HOSTS.names], ["db.example.com"]);
  assert.deepEqual(s.HBAGATE_ALLOWED_HOSTS.suffixes, [".apps.example.com"]);
  const d = loadSettings({});
  assert.deepEqual([d.HBAGATE_CORS_ORIGINS, d.HBAGATE_ALLOWED_HOSTS.any, d.HBAGATE_ALLOWED_HOSTS.names.size], [[], false, 0]);
  assert.throws(
    () => loadSettings({ HBAGATE_CORS_ORIGINS: "https://app.example/app, null", HBAGATE_ALLOWED_HOSTS: "db.example.com:5432" }),
    (err: Error) => err.message.includes('HBAGATE_CORS_ORIGINS="https://app.example/app, null": invalid origin "https://app.example/app"') && err.message.includes('HBAGATE_ALLOWED_HOSTS="db.example.com:5432": invalid allowed host'),
  );
});
