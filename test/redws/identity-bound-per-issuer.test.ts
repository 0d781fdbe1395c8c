// Red team (oauth sessions): a subject names an end user only at its issuer (OpenID Connect:
// `sub` is unique within the issuer). Two lines trusting two issuers: an end user of the second
// who holds a token whose `sub` is the same string as a user's of the first (any issuer that lets
// users choose their name, or just a coincidence of numbering) must not use up that user's
// per-identity places; the bound is for one caller, and these are two.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { RawSession, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";

describe("redws: the per-identity bound is per issuer's subject", () => {
  let cluster: Cluster;
  let ours: Issuer;
  let theirs: Issuer;
  let gw: SessionGateway;
  let dir: string | undefined;

  before(async () => {
    [cluster, ours, theirs] = await Promise.all([startCluster(), startIssuer(), startIssuer()]);
    await cluster.sql.unsafe("create role webapp login; create role partner login");
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    // One CA file for both issuers' certificates.
    dir = await mkdtemp(join(tmpdir(), "redws-cas-"));
    const caFile = join(dir, "cas.pem");
    await writeFile(caFile, ours.caPem + "\n" + theirs.caPem);
    gw = await startSessionGateway(
      [
        `host all webapp 127.0.0.1/32 oauth issuer=${ours.url} scope=api delegate_ident_mapping=1`,
        `host all partner 127.0.0.1/32 oauth issuer=${theirs.url} scope=api delegate_ident_mapping=1`,
      ].join("\n") + "\n",
      cluster.port,
      { HBAGATE_OAUTH_CA_FILE: caFile, HBAGATE_SESSIONS_MAX_PER_ROLE: "4", HBAGATE_SESSIONS_MAX_PER_IDENTITY: "1" },
    );
  });
  after(async () => {
    await gw?.close();
    await Promise.all([ours?.stop(), theirs?.stop()]);
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("a session of the other issuer's 'alice' leaves our alice her place; two of ours are still one too many", async () => {
    const mallory = new RawSession(gw.wsUrl);
    await mallory.login({ user: "partner", database: "postgres" }, await theirs.sign({ sub: "alice", role: "partner", scope: "api" }));
    const alice = new RawSession(gw.wsUrl);
    try {
      await alice.login({ user: "webapp", database: "postgres" }, await ours.sign({ sub: "alice", role: "webapp", scope: "api" }));
      // The bound itself still holds for our alice.
      const again = new RawSession(gw.wsUrl);
      await assert.rejects(again.login({ user: "webapp", database: "postgres" }, await ours.sign({ sub: "alice", role: "webapp", scope: "api" })), (e: { code?: string }) => e.code === "53300");
    } finally {
      alice.close();
      mallory.close();
    }
  });
});
