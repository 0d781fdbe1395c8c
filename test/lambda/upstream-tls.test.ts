// The upstream connection as deployed: on Lambda the server's certificate is
// verified unless `require` is chosen. NODE_EXTRA_CA_CERTS is read only when
// Node starts (as Lambda's runtime reads it), so each case is a fresh process
// running the bundled handler, with a function URL event, against a real
// PostgreSQL that accepts only TLS; its certificate (CN=localhost, signed by
// itself) stands in for the Amazon RDS roots of /var/runtime/ca-cert.pem.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { flavorMissing, startCluster, type Cluster } from "../harness/postgres.ts";
import { buildHandler, functionUrlEvent, invokeInOwnProcess } from "./events.ts";
import { basic } from "../harness/http.ts";

interface Outcome {
  readonly status: number;
  readonly body: { rows?: { ssl: boolean }[]; error?: { code: string } };
}

describe("upstream TLS on Lambda", { skip: flavorMissing("debian", { ssl: true }) ?? false }, () => {
  let cluster: Cluster;
  let bundle: string;
  let base: Record<string, string>;
  const serverCert = () => join(cluster.dir, "data", "server.crt");

  before(async () => {
    cluster = await startCluster({ ssl: true });
    await cluster.sql.unsafe("create role app login");
    // Only over TLS: a connection that skipped it would be refused.
    await cluster.writeHba("hostssl all app 127.0.0.1/32 trust\nhostssl all app ::1/128 trust\n", { reload: true });
    bundle = await buildHandler();
    const hba = join(dirname(bundle), "pg_hba.conf");
    writeFileSync(hba, "hostssl all app 0.0.0.0/0 trust\n");
    const { NODE_EXTRA_CA_CERTS: _, ...inherited } = process.env as Record<string, string>;
    base = { ...inherited, HBAGATE_HBA_FILE: hba, HBAGATE_UPSTREAM_HOST: "localhost", HBAGATE_UPSTREAM_PORT: String(cluster.port), HBAGATE_CONNECT_TIMEOUT: "5" };
    delete base.HBAGATE_UPSTREAM_SSL;
  });
  after(async () => {
    await cluster?.stop();
  });

  /** One cold start and one request, in a process of its own with this environment. */
  async function invoke(env: Record<string, string>): Promise<Outcome> {
    const event = functionUrlEvent({ query: "select ssl from pg_stat_ssl where pid = pg_backend_pid()" }, { headers: { authorization: basic("app") } });
    const r = await invokeInOwnProcess(bundle, event, { ...base, ...env }, 60_000);
    return { status: r.status, body: JSON.parse(r.body!) as Outcome["body"] };
  }

  test("by default the certificate is verified: trusted through NODE_EXTRA_CA_CERTS (how Lambda's runtime is told about the RDS roots), it connects over TLS", async () => {
    const r = await invoke({ NODE_EXTRA_CA_CERTS: serverCert() });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ ssl: true }]);
  });

  test("by default, a certificate nothing vouches for is refused: 08001 (503), no unverified connection", async () => {
    const r = await invoke({});
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, "08001");
  });

  test("HBAGATE_UPSTREAM_CA_FILE vouches for it as well; the host name must match (verify-full)", async () => {
    const ok = await invoke({ HBAGATE_UPSTREAM_CA_FILE: serverCert() });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.rows, [{ ssl: true }]);
    // The certificate names localhost, not 127.0.0.1.
    const wrongName = await invoke({ HBAGATE_UPSTREAM_CA_FILE: serverCert(), HBAGATE_UPSTREAM_HOST: "127.0.0.1" });
    assert.equal(wrongName.status, 503, JSON.stringify(wrongName.body));
    assert.equal(wrongName.body.error?.code, "08001");
  });

  test("`require` encrypts without verifying, only when chosen", async () => {
    const r = await invoke({ HBAGATE_UPSTREAM_SSL: "require" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.rows, [{ ssl: true }]);
  });
});
