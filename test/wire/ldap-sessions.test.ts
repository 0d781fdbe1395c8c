// An ldap line over a session: Neon's Client sends its password when asked,
// the gateway binds to a real slapd (TLS from a throwaway CA) exactly as for
// HTTP, and the refusal carries PostgreSQL's SQLSTATE and wording.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@neondatabase/serverless";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { pointNeonAt, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import { slapdMissing, startSlapd, type Slapd } from "../harness/slapd.ts";

describe("ldap lines over a session", { skip: slapdMissing() ?? false }, () => {
  let cluster: Cluster;
  let slapd: Slapd;
  let gw: SessionGateway;
  before(async () => {
    [cluster, slapd] = await Promise.all([startCluster(), startSlapd()]);
    await cluster.sql.unsafe("create role test1 login");
    // The directory decides; the upstream trusts the gateway for this role.
    await cluster.writeHba("host all test1 127.0.0.1/32 trust\n", { reload: true });
    gw = await startSessionGateway(`host all all 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport=${slapd.port} ldaptls=1 ldapprefix="uid=" ldapsuffix=",${slapd.baseDn}"\n`, cluster.port, {
      HBAGATE_LDAP_CA_FILE: slapd.caFile,
    });
  });
  after(async () => {
    await gw?.close();
    await slapd?.stop();
    await cluster?.stop();
  });

  const attempt = async (user: string, password: string) => {
    pointNeonAt(gw, { pipelineConnect: false });
    const client = new Client(`postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1/postgres`);
    client.on("error", () => {});
    try {
      await client.connect();
      return (await client.query("select current_user as u")).rows[0].u as string;
    } catch (e) {
      return e as { code?: string; message?: string };
    } finally {
      await client.end().catch(() => {});
    }
  };

  test("the directory's password lets in; a wrong one and an unknown user are refused alike (28000)", async () => {
    assert.equal(await attempt("test1", slapd.users.test1.password), "test1");
    const wrong = await attempt("test1", "not-it");
    assert.deepEqual([typeof wrong === "object" && wrong.code, typeof wrong === "object" && wrong.message], ["28000", 'LDAP authentication failed for user "test1"']);
    const unknown = await attempt("nobody", "whatever");
    assert.deepEqual([typeof unknown === "object" && unknown.code, typeof unknown === "object" && unknown.message], ["28000", 'LDAP authentication failed for user "nobody"']);
  });
});
