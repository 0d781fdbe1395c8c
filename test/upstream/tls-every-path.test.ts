// verify-full on every upstream path, not only the pools': the
// verification login (its own TLS, login-exchange.ts), the service login
// (role membership, the shared failure table). The server's certificate names
// "localhost"; the gateway is pointed at 127.0.0.1 with that certificate as its
// CA, so every path must refuse it (name mismatch), and with no CA at all too.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";
import { Pools } from "../../lib/upstream/pools.ts";

describe("upstream TLS on the other paths", { skip: flavorMissing("debian", { ssl: true }) ?? false }, () => {
  let cluster: Cluster;
  let ca = "";
  before(async () => {
    cluster = await startCluster({ ssl: true });
    await cluster.sql.unsafe("create role app login password 'app-pw'");
    await cluster.writeHba("hostssl all app 127.0.0.1/32 scram-sha-256\n", { reload: true });
    ca = readFileSync(join(cluster.dir, "data", "server.crt"), "utf8");
  });
  after(async () => {
    await cluster?.stop();
  });

  const pools = (host: string, ssl: NonNullable<ConstructorParameters<typeof Pools>[0]["ssl"]>) =>
    new Pools({ host, port: cluster.port, max: 1, maxTotal: 4, idleTimeout: 5, connectTimeout: 5, maxLifetime: 60, statementTimeout: 2000, ssl });

  test("control: the right name and CA log in", async () => {
    const p = pools("localhost", { ca, rejectUnauthorized: true });
    try {
      assert.equal((await p.login("postgres", "app", "app-pw")).ok, true);
    } finally {
      await p.close();
    }
  });

  for (const [what, host, ssl] of [
    ["a certificate for another name", "127.0.0.1", { ca, rejectUnauthorized: true }],
    ["a certificate nothing vouches for", "localhost", { rejectUnauthorized: true }],
  ] as const) {
    test(`verification login: ${what} is refused before the password is sent`, async () => {
      const p = pools(host, ssl);
      try {
        await assert.rejects(p.login("postgres", "app", "app-pw"), (e: { code?: string }) => e.code === "08001" || e.code === "08006" || /certificate|altname|self.signed/i.test(String((e as Error).message)));
      } finally {
        await p.close();
      }
    });
    test(`service login: ${what} is refused`, async () => {
      const p = pools(host, ssl);
      try {
        const sql = p.service("postgres", "app", () => "app-pw");
        await assert.rejects(sql`select 1`);
      } finally {
        await p.close();
      }
    });
  }
});
