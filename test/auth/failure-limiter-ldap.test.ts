// The brute-force brake in front of a real slapd: once test1 is locked, no
// other spelling the directory would take for test1 gets a guess. slapd is
// the oracle for which spellings those are, and is paused while the locked
// names are tried: any request that reached it would hang into a 503.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "ldapts";
import { authenticateLdap, escapeDnValue, escapeFilterValue } from "../../lib/auth/ldap.ts";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { slapdMissing, startSlapd, type Slapd } from "../harness/slapd.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const BASE = "dc=example,dc=net";

/** Spellings slapd takes for uid=test1 (checked against it below). */
const SPELLINGS = ["TEST1", "Test1", " test1", "test1 ", "  test1  ", "\ttest1", "test1\n", "ｔｅｓｔ１", "test①", "\u3000test1", "test1\u00a0", `test1${" ".repeat(58)}`];

describe("brute-force brake with LDAP", { skip: slapdMissing() ?? false }, () => {
  let slapd: Slapd;
  let pools: Pools;
  let limiter: FailureLimiter;
  let gateway: ReturnType<typeof testApp>;
  let peer: PeerInfo = { transport: "host", address: "10.3.0.1", encrypted: false };
  let now = 0;

  before(async () => {
    slapd = await startSlapd();
    // No upstream: a caller who gets past the directory meets 503 from the pool, never a 429.
    pools = testPools(1);
  });
  after(async () => {
    await pools?.close();
    await slapd?.stop();
  });

  /** A fresh gateway and limiter: lock after 3 failures, for a minute. */
  function fresh() {
    const S = slapd.port;
    const rules = [
      // The database name picks the line: simple bind, search+bind by uid, search+bind by uid or mail.
      `host simple all all ldap ldapserver=127.0.0.1 ldapport=${S} ldapprefix="uid=" ldapsuffix=",${BASE}"`,
      `host search all all ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}"`,
      `host alias all all ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}" ldapsearchfilter="(|(uid=$username)(mail=$username))"`,
    ].join("\n");
    now = 0;
    limiter = new FailureLimiter({ slowAfter: 100, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 100, now: () => now });
    gateway = testApp(pools, rules, {
      peer: () => peer,
      failureLimiter: limiter,
      ldap: { connectTimeoutMs: 800, authenticate: authenticateLdap, operationTimeoutMs: 800, caFile: slapd.caFile },
    });
  }

  const ask = async (database: string, user: string, password: string, headers: Record<string, string> = {}) => {
    const res = await gateway.request(`/v1/${database}/sql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic(user, password), ...headers },
      body: '{"query":"select 1"}',
    });
    return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
  };
  const lockTest1 = async (database: string, user = "test1") => {
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask(database, user, "wrong"), { status: 403, code: "28000" });
    assert.deepEqual(await ask(database, user, "secret1"), { status: 429, code: "08004" });
  };
  /** Run `fn` with slapd stopped: whatever reaches the directory now hangs into a 503. */
  const withoutDirectory = async (fn: () => Promise<void>) => {
    slapd.pause();
    try {
      await fn();
    } finally {
      slapd.resume();
    }
  };

  test("the oracle: slapd takes every one of these spellings for test1 (simple bind; search too, but for tab and newline)", async () => {
    for (const name of SPELLINGS) {
      const bind = new Client({ url: slapd.url, strictDN: true });
      try {
        // As the gateway builds the DN; a wrong spelling would be InvalidCredentialsError.
        await bind.bind(`uid=${escapeDnValue(name)},${BASE}`, "secret1");
        if (/[\t\n]/.test(name)) continue;
        const { searchEntries } = await bind.search(BASE, { scope: "sub", filter: `(uid=${escapeFilterValue(name)})`, attributes: ["1.1"] });
        assert.deepEqual(searchEntries.map((e) => e.dn), [`uid=test1,${BASE}`], JSON.stringify(name));
      } finally {
        await bind.unbind();
      }
    }
  });

  test("simple bind: test1 locked, every other spelling of it is refused without reaching the directory", async () => {
    fresh();
    await lockTest1("simple");
    await withoutDirectory(async () => {
      for (const name of SPELLINGS) assert.deepEqual(await ask("simple", name, "secret1"), { status: 429, code: "08004" }, JSON.stringify(name));
      // A NUL byte, or a name longer than PostgreSQL's 63 bytes, is refused before any rule or directory.
      for (const name of ["test1\0", "\0test1", `test1${" ".repeat(59)}`]) {
        const r = await ask("simple", name, "secret1");
        assert.equal(r.status, 400, JSON.stringify(name));
      }
    });
    // Another user is not locked: it reaches the directory (up again) and gets past it.
    assert.equal((await ask("simple", "test2", "secret2")).status, 503);
  });

  test("the lock holds across LDAP lines: locked by simple bind, refused by search+bind, and the other way round", async () => {
    fresh();
    await lockTest1("simple");
    await withoutDirectory(async () => {
      for (const name of ["test1", "TEST1", " Test1 "]) assert.deepEqual(await ask("search", name, "secret1"), { status: 429, code: "08004" }, JSON.stringify(name));
    });
    fresh();
    await lockTest1("search", "Test1");
    await withoutDirectory(async () => {
      assert.deepEqual(await ask("simple", "test1", "secret1"), { status: 429, code: "08004" });
    });
  });

  test("search+bind: another name for the same entry (its mail) meets the lock before the password bind", async () => {
    fresh();
    const bindsAsTest1 = async () => (await slapd.readLog()).split("\n").filter((l) => l.includes(`BIND dn="uid=test1,${BASE}"`)).length;
    await lockTest1("alias");
    const before = await bindsAsTest1();
    assert.ok(before >= 3, "the log shows the binds of the wrong guesses");
    // The filter finds uid=test1 by its mail too; with the right password, a bind would let it through (503).
    assert.deepEqual(await ask("alias", "test1@example.net", "secret1"), { status: 429, code: "08004" });
    assert.deepEqual(await ask("alias", "TEST1@EXAMPLE.NET", "secret1"), { status: 429, code: "08004" });
    assert.equal(await bindsAsTest1(), before, "no bind as test1 reached the directory");
    // Locked under one name by simple bind, found under another by search: the same DN, the same lock.
    fresh();
    await lockTest1("simple");
    assert.deepEqual(await ask("alias", "test1@example.net", "secret1"), { status: 429, code: "08004" });
    // Guessing under the alias counts against the entry: three failures lock test1 on every line.
    fresh();
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask("alias", "test1@example.net", "wrong"), { status: 403, code: "28000" });
    await withoutDirectory(async () => {
      assert.deepEqual(await ask("simple", "test1", "secret1"), { status: 429, code: "08004" });
    });
    // Someone else's entry is not locked by it.
    assert.equal((await ask("alias", "test2@example.net", "secret2")).status, 503);
  });

  test("parallel guesses: no more reach the directory than the lock allows; a parallel burst of right ones all pass", async () => {
    fresh();
    const guesses = await Promise.all(Array.from({ length: 30 }, (_, i) => ask(i % 2 ? "simple" : "search", i % 3 ? "test1" : "TEST1", `wrong-${i}`)));
    const verified = guesses.filter((r) => r.status === 403).length;
    assert.equal(verified, 3, JSON.stringify(guesses));
    assert.ok(guesses.every((r) => r.status === 403 || (r.status === 429 && r.code === "08004")));
    // Someone with the right password and 20 requests at once waits for a turn, never gets a 429.
    const burst = await Promise.all(Array.from({ length: 20 }, () => ask("simple", "test2", "secret2")));
    assert.deepEqual(new Set(burst.map((r) => r.status)), new Set([503]));
    assert.equal(limiter.sizes().inFlight, 0, "nothing is left waiting or running");
  });

  test("look-alikes are other names to the directory: they reach it and are refused there", async () => {
    fresh();
    await lockTest1("simple");
    // Cyrillic е, dotless ı: slapd has no such user, so they cannot guess test1's password.
    for (const name of ["tеst1", "TESTı"]) assert.deepEqual(await ask("simple", name, "secret1"), { status: 403, code: "28000" });
  });
});
