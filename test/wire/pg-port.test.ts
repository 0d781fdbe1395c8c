// PostgreSQL's own port (HBAGATE_PG_PORT): the sessions of /v2 on plain TCP,
// for psql and node-postgres, through the same hba rules; TLS when the server
// has a certificate, which is what a hostssl line asks for.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { connect as connectTcp, type Socket } from "node:net";
import { makeCa } from "../harness/certs.ts";
import { freePort } from "../harness/process.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import { run } from "../harness/spawn.ts";

const PSQL = ["/usr/lib/postgresql/18/bin/psql", "/usr/lib/postgresql/17/bin/psql", "/usr/lib/postgresql/16/bin/psql", "/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"].find((p) => existsSync(p));

describe("PostgreSQL's protocol on HBAGATE_PG_PORT", () => {
  let cluster: Cluster;
  let gw: SessionGateway;
  let port: number;
  let caFile: string;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe("create role app login password 'app-pw'; create role secure login password 'secure-pw';");
    await cluster.writeHba("host all app,secure 127.0.0.1/32 scram-sha-256\n", { reload: true });
    const dir = mkdtempSync(join(tmpdir(), "hbagate-pgport-"));
    const ca = makeCa(dir, "ca", { cn: "hbagate test CA" });
    const server = ca.issue("server", { cn: "127.0.0.1", serverFor: ["IP:127.0.0.1", "DNS:localhost"] });
    caFile = ca.certFile;
    port = await freePort();
    gw = await startSessionGateway("hostssl all secure 127.0.0.1/32 scram-sha-256\nhost all app 127.0.0.1/32 scram-sha-256\n", cluster.port, {
      HBAGATE_PG_PORT: String(port),
      HBAGATE_TLS_CERT_FILE: server.certFile,
      HBAGATE_TLS_KEY_FILE: server.keyFile,
    });
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  const connect = async (config: pg.ClientConfig) => {
    const client = new pg.Client({ host: "127.0.0.1", port, database: "postgres", ...config });
    client.on("error", () => {});
    await client.connect();
    return client;
  };

  test("node-postgres: parameters and a transaction; a wrong password is 28P01", async () => {
    const client = await connect({ user: "app", password: "app-pw" });
    try {
      assert.deepEqual((await client.query("select $1::int + 1 as n, current_user as u", [41])).rows, [{ n: 42, u: "app" }]);
      await client.query("begin");
      await client.query("create temp table t (a int)");
      await client.query("insert into t values (1)");
      assert.equal((await client.query("select count(*)::int as n from t")).rows[0].n, 1);
      await client.query("commit");
    } finally {
      await client.end();
    }
    await assert.rejects(connect({ user: "app", password: "nope" }), (e: { code?: string; message?: string }) => e.code === "28P01" && e.message === 'password authentication failed for user "app"');
  });

  test("TLS on the port makes the session encrypted: a hostssl line matches it, and not a plain one", async () => {
    const secure = await connect({ user: "secure", password: "secure-pw", ssl: { ca: await import("node:fs").then((fs) => fs.readFileSync(caFile, "utf8")) } });
    try {
      assert.equal((await secure.query("select current_user as u")).rows[0].u, "secure");
    } finally {
      await secure.end();
    }
    await assert.rejects(connect({ user: "secure", password: "secure-pw" }), (e: { code?: string; message?: string }) => e.code === "28000" && /no encryption/.test(e.message ?? ""));
  });

  test("a connection that never starts counts against the sessions and is ended by the authentication time bound", async () => {
    const limited = await freePort();
    const small = await startSessionGateway("host all app 127.0.0.1/32 scram-sha-256\n", cluster.port, {
      HBAGATE_PG_PORT: String(limited),
      HBAGATE_SESSIONS_MAX: "1",
      HBAGATE_SESSION_AUTH_TIMEOUT_MS: "400",
    });
    try {
      const received = (socket: Socket) => {
        const chunks: Buffer[] = [];
        socket.on("data", (c: Buffer) => chunks.push(c));
        return { text: () => Buffer.concat(chunks).toString("latin1"), closed: new Promise<void>((r) => socket.once("close", () => r())) };
      };
      // Connects, asks for TLS again and again (answered N: no certificate here), never starts.
      const idle = connectTcp({ host: "127.0.0.1", port: limited });
      idle.on("error", () => {});
      const idleSeen = received(idle);
      const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
      idle.once("connect", () => idle.write(Buffer.concat([sslRequest, sslRequest, sslRequest])));
      await new Promise((r) => idle.once("connect", r));
      // The next connection finds no place: PostgreSQL's "too many clients".
      const refused = new pg.Client({ host: "127.0.0.1", port: limited, user: "app", password: "app-pw", database: "postgres" });
      refused.on("error", () => {});
      await assert.rejects(refused.connect(), (e: { code?: string; message?: string }) => e.code === "53300" && e.message === "sorry, too many clients already");
      await idleSeen.closed;
      assert.match(idleSeen.text(), /^NNN/);
      assert.match(idleSeen.text(), /canceling authentication due to timeout/);
    } finally {
      await small.close();
    }
  });

  test("psql through the gateway", { skip: PSQL ? false : "psql is not installed (apt-get install -y postgresql-client)" }, async () => {
    const r = await run(PSQL!, ["-h", "127.0.0.1", "-p", String(port), "-U", "app", "-d", "postgres", "-XAtc", "select 'through ' || current_user"], {
      env: { ...process.env, PGPASSWORD: "app-pw", PGSSLMODE: "disable" },
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 0, r.output);
    assert.equal(r.stdout, "through app\n");
    const tls = await run(PSQL!, ["-h", "127.0.0.1", "-p", String(port), "-U", "secure", "-d", "postgres", "-XAtc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"], {
      env: { ...process.env, PGPASSWORD: "secure-pw", PGSSLMODE: "verify-full", PGSSLROOTCERT: caFile },
      timeoutMs: 20_000,
    });
    // TLS is between psql and the gateway; the gateway's own connection upstream is plain here.
    assert.equal(tls.code, 0, tls.output);
    assert.equal(tls.stdout, "f\n");
  });
});
