// Password lines verified by logging in upstream: a login proves a password
// only when the server asked for it with an exchange the line allows. Each
// decision is compared, in the same test, with what a real PostgreSQL decides
// when the line is its own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { ExchangeWatcher } from "../../lib/upstream/login-exchange.ts";
import type { PeerInfo } from "../../lib/connection/caller.ts";
import { parseVerifierFile } from "../../lib/auth/verifier-file.ts";
import type { LogEvent } from "../../lib/log.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { flavorMissing, startCluster, type Cluster, type Flavor } from "../harness/postgres.ts";
import { testPools } from "../http/deps.ts";
import { selfSignedPem } from "../harness/certs.ts";
import { basic } from "../harness/http.ts";
import { testApp } from "../harness/gateway.ts";

const PASSWORD = "pw-Καλημέρα-1";
const LINE_METHODS = ["password", "md5", "scram-sha-256"] as const;
const UPSTREAM_METHODS = ["trust", "password", "md5", "scram-sha-256"] as const;
/** Roles by stored form: a SCRAM secret, an MD5 hash, no password at all. */
const STORED = { scram: "r_scram", md5: "r_md5", none: "r_none" } as const;
type Stored = keyof typeof STORED;
type LineMethod = (typeof LINE_METHODS)[number];
type UpstreamMethod = (typeof UPSTREAM_METHODS)[number];

/** Gateway lines by client address, so one app serves every line method. */
const ADDRESS: Record<LineMethod, string> = { password: "10.0.0.1", md5: "10.0.0.2", "scram-sha-256": "10.0.0.3" };
const RULES = LINE_METHODS.map((m) => `host all all ${ADDRESS[m]}/32 ${m}`).join("\n") + "\n";

/** A CA that signed nothing the server has. */
const OTHER_CA = selfSignedPem({ cn: "other-ca" }).cert;


async function setUpRoles(cluster: Cluster): Promise<void> {
  await cluster.sql.unsafe(`create role ${STORED.scram} login password '${PASSWORD}'`);
  // PostgreSQL 18 warns that MD5 is deprecated; it still stores it.
  await cluster.sql.unsafe("set password_encryption = 'md5'");
  await cluster.sql.unsafe(`create role ${STORED.md5} login password '${PASSWORD}'`);
  await cluster.sql.unsafe("reset password_encryption");
  await cluster.sql.unsafe(`create role ${STORED.none} login`);
}

/** Whether PostgreSQL itself lets `user` in with `password` through a `method` line. */
async function postgresAllows(cluster: Cluster, user: string, password: string): Promise<boolean> {
  const sql = postgres({ host: "127.0.0.1", port: cluster.port, database: "postgres", username: user, password, max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch (err) {
    if (err instanceof postgres.PostgresError && err.code.startsWith("28")) return false;
    throw err;
  } finally {
    await sql.end({ timeout: 0 });
  }
}

/**
 * What an upstream login's exchange proves, by upstream method and stored
 * form: the exchange PostgreSQL uses (trust: none; password: cleartext; md5:
 * MD5 for an MD5 hash, SCRAM for a SCRAM secret; scram-sha-256: SCRAM, and an
 * MD5 hash cannot log in) and whether it shows what each line demands.
 */
function exchangeProves(upstream: UpstreamMethod, stored: Stored, line: LineMethod, major: number): boolean {
  if (stored === "none" || upstream === "trust") return false;
  if (upstream === "scram-sha-256") return stored === "scram";
  if (upstream === "md5") return line !== "scram-sha-256" || stored === "scram";
  // Cleartext: shows a stored password was checked (PostgreSQL 16+ says so), never which form.
  return line !== "scram-sha-256" && major >= 16;
}

for (const flavor of ["embedded", "debian"] as Flavor[]) {
  describe(`verification by upstream login (${flavor})`, { skip: flavorMissing(flavor) ?? false }, () => {
    let cluster: Cluster;
    let pools: Pools;
    let peer: PeerInfo;
    let logs: LogEvent[];
    let app: ReturnType<typeof testApp>;

    before(async () => {
      cluster = await startCluster({ flavor });
      await setUpRoles(cluster);
      pools = testPools(cluster.port);
      logs = [];
      app = testApp(pools, RULES, { peer: () => peer, log: (e) => logs.push(e) });
    });
    after(async () => {
      await pools?.close();
      await cluster?.stop();
    });

    async function gateway(target: typeof app, line: LineMethod, user: string, password: string, endpoint: "/v1" | "/sql" = "/v1") {
      peer = { transport: "host", address: ADDRESS[line], encrypted: false };
      const res =
        endpoint === "/v1"
          ? await target.request("/v1/postgres/sql", { method: "POST", headers: { "content-type": "application/json", authorization: basic(user, password) }, body: '{"query":"select current_user as u"}' })
          : await target.request("/sql", {
              method: "POST",
              headers: {
                "content-type": "application/json",
                "neon-connection-string": `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@gateway.example/postgres`,
              },
              body: '{"query":"select current_user as u","params":[]}',
            });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    }

    test("a trust upstream proves nothing: every password line refuses, even for a superuser", async () => {
      await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
      for (const line of LINE_METHODS) {
        const r = await gateway(app, line, "postgres", "anything");
        assert.equal(r.status, 401, `${line}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, "28P01");
        assert.equal(r.body.error.message, 'password authentication failed for user "postgres"');
      }
      const reasons = logs.filter((e) => e.msg === "a password was refused because the upstream login does not prove it" && e.user === "postgres");
      assert.equal(reasons.length, 3, "logged once per role and line method");
      assert.match(String(reasons[0]!.reason), /without asking for a password.*HBAGATE_VERIFIER_FILE/);
      const again = await gateway(app, "password", "postgres", "anything");
      assert.equal(again.status, 401);
      assert.equal(logs.filter((e) => e.msg === "a password was refused because the upstream login does not prove it" && e.user === "postgres").length, 3, "not again");
      assert.ok(!JSON.stringify(logs).includes("anything"), "the password is never logged");
    });

    test("an MD5-stored password never passes a scram-sha-256 line, as PostgreSQL refuses it", async () => {
      await cluster.writeHba("host all all 127.0.0.1/32 md5\n", { reload: true });
      const r = await gateway(app, "scram-sha-256", STORED.md5, PASSWORD);
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, "28P01");
      const reason = logs.findLast((e) => e.msg === "a password was refused because the upstream login does not prove it" && e.user === STORED.md5);
      assert.match(String(reason?.reason), /MD5 exchange/);
      // The same password on an md5 line is fine (PostgreSQL allows it too).
      assert.equal((await gateway(app, "md5", STORED.md5, PASSWORD)).status, 200);
    });

    test("an unknown role and a wrong password read the same, on both endpoints, whatever the upstream asks", async () => {
      for (const upstream of ["trust", "scram-sha-256"] as const) {
        await cluster.writeHba(`host all all 127.0.0.1/32 ${upstream}\n`, { reload: true });
        for (const endpoint of ["/v1", "/sql"] as const) {
          for (const line of LINE_METHODS) {
            const unknown = await gateway(app, line, "nosuchrole", "x", endpoint);
            const wrong = await gateway(app, line, STORED.scram, "x", endpoint);
            const label = `${upstream} upstream, ${line} line, ${endpoint}`;
            assert.equal(unknown.status, wrong.status, label);
            const strip = (b: Record<string, any>) => JSON.stringify(b).replaceAll("nosuchrole", "U").replaceAll(STORED.scram, "U");
            assert.equal(strip(unknown.body), strip(wrong.body), label);
            assert.equal(wrong.status, endpoint === "/v1" ? 401 : wrong.status, label);
            assert.match(JSON.stringify(wrong.body), /28P01/, label);
          }
        }
      }
    });

    test("matrix: stored form × line method × upstream method, against PostgreSQL's own decision", async () => {
      // What PostgreSQL decides with the line as its own, for the right password.
      const oracle = new Map<string, boolean>();
      for (const line of LINE_METHODS) {
        await cluster.writeHba(`host all all 127.0.0.1/32 ${line}\n`, { reload: true });
        for (const stored of Object.keys(STORED) as Stored[]) {
          oracle.set(`${line}/${stored}`, await postgresAllows(cluster, STORED[stored], PASSWORD));
          assert.equal(await postgresAllows(cluster, STORED[stored], "wrong"), false);
        }
      }
      // PostgreSQL's table (20.5): scram-sha-256 needs a SCRAM secret, md5 and password take either, no password never.
      assert.deepEqual(Object.fromEntries(oracle), {
        "password/scram": true, "password/md5": true, "password/none": false,
        "md5/scram": true, "md5/md5": true, "md5/none": false,
        "scram-sha-256/scram": true, "scram-sha-256/md5": false, "scram-sha-256/none": false,
      });

      // The verifier-file path: the stored secrets as PostgreSQL has them.
      const rows = await cluster.sql<{ rolname: string; rolpassword: string }[]>`select rolname, rolpassword from pg_authid where rolname like 'r\\_%' and rolpassword is not null`;
      const file = parseVerifierFile("/users.txt", rows.map((r) => `"${r.rolname}" "${r.rolpassword}"`).join("\n") + "\n");
      assert.deepEqual(file.errors, []);
      const withFile = testApp(pools, RULES, { peer: () => peer, verifierFile: () => file });

      const disagreements: string[] = [];
      for (const upstream of UPSTREAM_METHODS) {
        await cluster.writeHba(`host all all 127.0.0.1/32 ${upstream}\n`, { reload: true });
        for (const line of LINE_METHODS) {
          for (const stored of Object.keys(STORED) as Stored[]) {
            const label = `upstream ${upstream}, line ${line}, stored ${stored}`;
            const pgAllows = oracle.get(`${line}/${stored}`)!;
            const byLogin = (await gateway(app, line, STORED[stored], PASSWORD)).status === 200;
            assert.ok(!byLogin || pgAllows, `${label}: the upstream-login path allowed what PostgreSQL denies`);
            if (byLogin !== exchangeProves(upstream, stored, line, cluster.major)) disagreements.push(`${label}: login ${byLogin}`);
            assert.equal((await gateway(app, line, STORED[stored], "wrong")).status, 401, `${label}: wrong password`);
          }
        }
      }
      assert.deepEqual(disagreements, [], "the upstream-login path allows exactly where the exchange proves what the line demands");

      // The verifier file decides alone and agrees with PostgreSQL everywhere (behind a trust
      // upstream, so that the lease's own login never decides for it).
      await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
      for (const line of LINE_METHODS) {
        for (const stored of Object.keys(STORED) as Stored[]) {
          const byFile = await gateway(withFile, line, STORED[stored], PASSWORD);
          assert.equal(byFile.status === 200, oracle.get(`${line}/${stored}`), `verifier file, line ${line}, stored ${stored}: ${JSON.stringify(byFile.body)}`);
          assert.equal((await gateway(withFile, line, STORED[stored], "wrong")).status, 401);
        }
      }
    });
  });
}

describe("verification logins over TLS", { skip: flavorMissing("debian", { ssl: true }) ?? false }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster({ ssl: true });
    await setUpRoles(cluster);
    // Passwords only over TLS: a login that skipped TLS would be refused.
    await cluster.writeHba("hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n", { reload: true });
  });
  after(() => cluster?.stop());

  test("the exchange is read inside TLS, with the configured verification", async () => {
    const ca = await readFile(join(cluster.dir, "data", "server.crt"), "utf8");
    for (const [host, ssl] of [["127.0.0.1", "require"], ["localhost", { ca, rejectUnauthorized: true }]] as const) {
      const pools = testPools(cluster.port, { host, ssl });
      try {
        assert.deepEqual(await pools.login("postgres", STORED.scram, PASSWORD), { ok: true, exchange: "scram-sha-256" });
        const wrong = await pools.login("postgres", STORED.scram, "wrong");
        assert.equal(wrong.ok, false);
      } finally {
        await pools.close();
      }
    }
    // A certificate from another CA is a connection failure (08001), never a login.
    const other = testPools(cluster.port, { host: "localhost", ssl: { ca: OTHER_CA, rejectUnauthorized: true } });
    try {
      await assert.rejects(other.login("postgres", STORED.scram, PASSWORD), (e: any) => /^08/.test(e.code));
    } finally {
      await other.close();
    }
  });
});

test("the exchange watcher reads messages split and coalesced anyhow", () => {
  const message = (type: string, body: Buffer) => Buffer.concat([Buffer.from(type), Buffer.from([0, 0, 0, body.length + 4].map((b, i) => (i === 3 ? b & 0xff : b))), body]);
  const int = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  const sasl = Buffer.concat([int(10), Buffer.from("SCRAM-SHA-256\0\0")]);
  const stream = Buffer.concat([message("R", sasl), message("R", Buffer.concat([int(11), Buffer.from("r=abc")])), message("R", Buffer.concat([int(12), Buffer.from("v=x")])), message("R", int(0)), message("S", Buffer.from("a\0b\0")), message("R", int(3))]);
  for (const size of [1, 2, 3, 7, stream.length]) {
    const w = new ExchangeWatcher();
    for (let i = 0; i < stream.length; i += size) w.feed(stream.subarray(i, i + size));
    assert.equal(w.exchange, "scram-sha-256", `chunks of ${size}`);
  }
  const trust = new ExchangeWatcher();
  trust.feed(Buffer.concat([message("R", int(0)), message("R", int(3))]));
  assert.equal(trust.exchange, "none", "an R after the first other message is not read");
  const md5 = new ExchangeWatcher();
  md5.feed(message("R", Buffer.concat([int(5), Buffer.from("salt")])));
  assert.equal(md5.exchange, "md5");
});
