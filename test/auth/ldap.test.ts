// The ldap method through the gateway's HTTP API, against a real slapd (plain,
// ldaps and StartTLS with a throwaway CA) and a real PostgreSQL behind.
import { authenticateLdap } from "../../lib/auth/ldap.ts";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import type { GatewayDeps } from "../../lib/http/app.ts";
import type { LogEvent } from "../../lib/log.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";
import { freeClosedPort, startBlackhole, type Blackhole } from "../harness/dead-servers.ts";
import { slapdMissing, startSlapd, type Slapd } from "../harness/slapd.ts";
import { reasons } from "../harness/prerequisites.ts";
import { Responses } from "../harness/responses.ts";
import { testPools } from "../http/deps.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const BASE = "dc=example,dc=net";

describe("LDAP authentication", { skip: reasons(slapdMissing(), flavorMissing("debian")) ?? false }, () => {
  let slapd: Slapd;
  let cluster: Cluster;
  let pools: Pools;
  let blackhole: Blackhole;
  let closedPort: number;
  let rules: string;
  let peer: PeerInfo = { transport: "host", address: "10.1.0.1", encrypted: false };
  const logs: LogEvent[] = [];

  before(async () => {
    [slapd, cluster, blackhole, closedPort] = await Promise.all([startSlapd(), startCluster(), startBlackhole(), freeClosedPort()]);
    await cluster.sql.unsafe(`create role test1 login; create role test2 login; create role dup1 login; create role "o'brien, ""jr""+x" login`);
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port);
    const S = slapd.port;
    const L = slapd.ldapsPort;
    const simple = `ldapprefix="uid=" ldapsuffix=",${BASE}"`;
    rules = [
      `host all all 10.1.0.1/32 ldap ldapserver=127.0.0.1 ldapport=${S} ${simple}`,
      `host all all 10.1.0.2/32 ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}"`,
      `host all all 10.1.0.3/32 ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}" ldapsearchfilter="(|(uid=$username)(mail=$username))"`,
      `host all all 10.1.0.4/32 ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}" ldapbinddn="${slapd.searchDn}" ldapbindpasswd=${slapd.searchPassword} ldapsearchattribute=mail`,
      `host all all 10.1.0.5/32 ldap ldapurl="ldap://127.0.0.1:${S}/${BASE}?uid?sub"`,
      `host all all 10.1.0.6/32 ldap ldapurl="ldap://127.0.0.1:${S}/${BASE}??sub?(uid=$username)"`,
      `host all all 10.1.0.7/32 ldap ldapserver=127.0.0.1 ldapscheme=ldaps ldapport=${L} ldapbasedn="${BASE}"`,
      `host all all 10.1.0.8/32 ldap ldapurl="ldaps://127.0.0.1:${L}/${BASE}?uid?sub"`,
      `host all all 10.1.0.9/32 ldap ldapserver=127.0.0.1 ldapport=${S} ldaptls=1 ${simple}`,
      `host all all 10.1.0.10/32 ldap ldapserver="127.0.0.2 127.0.0.1" ldapport=${S} ${simple}`,
      `host all all 10.1.0.11/32 ldap ldapserver=127.0.0.1 ldapport=${closedPort} ${simple}`,
      `host all all 10.1.0.12/32 ldap ldapserver=127.0.0.1 ldapport=${blackhole.port} ${simple}`,
      `host all all 10.1.0.13/32 ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}" ldapbinddn="${slapd.searchDn}" ldapbindpasswd=wrong`,
      `host all all 10.1.0.14/32 ldap ldapserver=127.0.0.1 ldapport=${S} ldapbasedn="${BASE}" ldapbinddn="${slapd.searchDn}" ldapbindpasswd="secretsmanager:ldap/service#password"`,
    ].join("\n");
  });
  after(async () => {
    await pools?.close();
    await Promise.all([slapd?.stop(), cluster?.stop(), blackhole?.close()]);
  });

  /** Every response of every app the tests make, searched for the passwords at the end. */
  const responses = new Responses();
  function app(overrides: Partial<GatewayDeps> = {}) {
    return responses.app(testApp(pools, rules, {
      peer: () => peer,
      ldap: { connectTimeoutMs: 1500, authenticate: authenticateLdap, operationTimeoutMs: 1500, caFile: slapd.caFile },
      log: (e) => logs.push(e),
      ...overrides,
    }));
  }
  let gateway: ReturnType<typeof testApp>;
  const ask = async (address: string, user: string, password: string, via = gateway) => {
    peer = { transport: "host", address, encrypted: false };
    const started = Date.now();
    const res = await via.request("/v1/postgres/sql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic(user, password) },
      body: JSON.stringify({ query: "select current_user as u" }),
    });
    const body = (await res.json()) as { rows?: { u: string }[]; error?: { code: string; message: string } };
    return { status: res.status, body, ms: Date.now() - started };
  };
  const allowed = async (address: string, user: string, password: string) => {
    const r = await ask(address, user, password);
    assert.equal(r.status, 200, `${address} ${user}: ${JSON.stringify(r.body)}`);
    assert.deepEqual(r.body.rows, [{ u: user }]);
  };
  const refused = async (address: string, user: string, password: string) => {
    const r = await ask(address, user, password);
    assert.equal(r.status, 403, `${address} ${user}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, "28000");
    assert.equal(r.body.error?.message, `LDAP authentication failed for user "${user}"`);
  };
  const unavailable = async (address: string, user: string, password: string, via = gateway) => {
    const r = await ask(address, user, password, via);
    assert.equal(r.status, 503, `${address} ${user}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.error?.code ?? "", /^08/);
    return r;
  };

  test("simple bind: right password in, wrong password and unknown user out (same message)", async () => {
    gateway = app();
    await allowed("10.1.0.1", "test1", "secret1");
    await refused("10.1.0.1", "test1", "wrong");
    await refused("10.1.0.1", "nobody", "secret1");
  });

  test("simple bind escapes DN specials in the user name instead of interpreting them", async () => {
    await allowed("10.1.0.1", slapd.users.special.uid, slapd.users.special.password);
    // A name that would smuggle in another RDN binds as nothing.
    await refused("10.1.0.1", "test1,dc=example", "secret1");
  });

  test("search+bind: anonymous search by uid, by a custom filter, and with a bind DN", async () => {
    await allowed("10.1.0.2", "test2", "secret2");
    await refused("10.1.0.2", "test2", "secret1");
    await allowed("10.1.0.3", "test1", "secret1");
    await allowed("10.1.0.2", slapd.users.special.uid, slapd.users.special.password);
  });

  test("search+bind: no entry and several entries both fail", async () => {
    await refused("10.1.0.2", "ghost", "secret1");
    // mail=dup@example.net matches two entries: "not unique", even with a right password.
    await refused("10.1.0.4", slapd.dupMail, slapd.users.dup1.password);
    assert.ok(logs.some((l) => String(l.msg).includes("is not unique")));
  });

  test("ldapbindpasswd may be a Secrets Manager reference", async () => {
    const asked: string[] = [];
    const withSecrets = app({
      ldap: {
        connectTimeoutMs: 1500, authenticate: authenticateLdap,
        operationTimeoutMs: 1500,
        caFile: slapd.caFile,
        readSecret: async (id) => (asked.push(id), JSON.stringify({ password: slapd.searchPassword })),
      },
    });
    peer = { transport: "host", address: "10.1.0.14", encrypted: false };
    const res = await withSecrets.request("/v1/postgres/sql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic("test1", "secret1") },
      body: JSON.stringify({ query: "select current_user as u" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(asked, ["ldap/service"]);
    // Without a secrets service the line cannot be used: unavailable, never a pass.
    await unavailable("10.1.0.14", "test1", "secret1");
  });

  test("a wrong ldapbindpasswd fails the login, never lets it through", async () => {
    await refused("10.1.0.13", "test1", "secret1");
  });

  test("ldapurl: attribute and scope, and a filter inside the URL", async () => {
    await allowed("10.1.0.5", "test1", "secret1");
    await refused("10.1.0.5", "test1", "nope");
    await allowed("10.1.0.6", "test2", "secret2");
  });

  test("injection attempts never authenticate", async () => {
    for (const name of ["*", ")(uid=*", "admin)(|(uid=*", "test1)(uid=*", "*)(|(objectClass=*"]) {
      for (const address of ["10.1.0.2", "10.1.0.3", "10.1.0.1"]) await refused(address, name, "secret1");
    }
  });

  test("an empty password is refused before any LDAP traffic", async () => {
    const before = (await slapd.readLog()).length;
    await refused("10.1.0.1", "test1", "");
    await refused("10.1.0.2", "test1", "");
    assert.equal((await slapd.readLog()).slice(before).includes("BIND"), false);
  });

  test("ldaps (scheme and URL) and StartTLS verify the server against the configured CA", async () => {
    await allowed("10.1.0.7", "test1", "secret1");
    await allowed("10.1.0.8", "test2", "secret2");
    await allowed("10.1.0.9", "test1", "secret1");
    const wrongCa = app({ ldap: { connectTimeoutMs: 1500, authenticate: authenticateLdap, operationTimeoutMs: 1500, caFile: slapd.wrongCaFile } });
    for (const address of ["10.1.0.7", "10.1.0.8", "10.1.0.9"]) await unavailable(address, "test1", "secret1", wrongCa);
  });

  test("the first server down, the second one is used; all down is 503", async () => {
    // The first server (127.0.0.2, same port) is a listener that records each connection and
    // closes it: the gateway must have tried it, and before it bound at the second (slapd).
    // slapd logs each bind it receives as `BIND dn="…" method=128` (then its outcome as `mech=…`).
    const binds = async () => (await slapd.readLog()).split("\n").filter((l) => l.includes('BIND dn="uid=test1,') && l.includes(" method=")).length;
    const tried: { bindsAtSlapd: number }[] = [];
    const first = createServer((socket) => {
      socket.on("error", () => {});
      void binds().then((n) => {
        tried.push({ bindsAtSlapd: n });
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => first.once("error", reject).listen(slapd.port, "127.0.0.2", resolve));
    try {
      const before = await binds();
      await allowed("10.1.0.10", "test1", "secret1");
      assert.deepEqual(tried, [{ bindsAtSlapd: before }], "the first server was tried once, before any bind reached the second");
      assert.equal(await binds(), before + 1, "the second server answered the bind");
    } finally {
      await new Promise((resolve) => first.close(resolve));
    }
    await unavailable("10.1.0.11", "test1", "secret1");
  });

  // A hang is a failure of this test, not a suite that never ends.
  test("a server that accepts and never answers times out: 503, not a hang", { timeout: 30_000 }, async () => {
    const r = await unavailable("10.1.0.12", "test1", "secret1");
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    assert.ok(blackhole.accepted > 0);
  });

  test("LDAP stopped mid-run: 503 while it is gone, success once it is back", { timeout: 30_000 }, async () => {
    slapd.pause();
    try {
      const r = await unavailable("10.1.0.2", "test2", "secret2");
      assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    } finally {
      slapd.resume();
    }
    await allowed("10.1.0.2", "test2", "secret2");
  });

  test("a burst of requests costs one bind: successes are cached, failures are not", async () => {
    const cached = app({ verifiedCallers: new VerifiedCallers({ ttlMs: 60_000, maxEntries: 100 }) });
    assert.equal((await ask("10.1.0.1", "test1", "secret1", cached)).status, 200);
    slapd.pause();
    try {
      for (let i = 0; i < 5; i++) assert.equal((await ask("10.1.0.1", "test1", "secret1", cached)).status, 200);
      // A different password is not the cached credential: it needs LDAP, which is away.
      assert.equal((await ask("10.1.0.1", "test1", "other", cached)).status, 503);
    } finally {
      slapd.resume();
    }
  });

  test("no password reaches the log, a response body or a header", async () => {
    const text = JSON.stringify(logs);
    const secrets = ["secret1", "secret2", slapd.searchPassword, slapd.users.special.password];
    for (const secret of secrets) assert.ok(!text.includes(secret), secret);
    assert.ok(responses.count > 30, `every request's response was recorded (${responses.count})`);
    const answered = await responses.text();
    for (const secret of [...secrets, ...secrets.map((p) => Buffer.from(`test1:${p}`).toString("base64"))]) assert.ok(!answered.includes(secret), `${secret} in a response`);
  });
});
