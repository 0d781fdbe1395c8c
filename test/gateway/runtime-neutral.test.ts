// The assembly is runtime-neutral: it reaches no runtime module (node:*),
// only the platform's ports do; and a gateway assembled from ports made of
// Web APIs and in-memory files (what an edge entry point would write, in
// about thirty lines) answers queries and fails closed where a port is absent.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { javascriptMac } from "../../lib/auth/verified-callers.ts";
import { loadSettings } from "../../lib/config/settings.ts";
import { memorySource } from "../../lib/config/source.ts";
import { assembleGateway } from "../../lib/gateway/assemble.ts";
import { NO_CLIENT_CERTIFICATES, type Platform } from "../../lib/gateway/platform.ts";
import { Pools } from "../../lib/upstream/pools.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("runtime-neutral assembly", () => {
  test("lib/gateway/assemble.ts reaches no node: module (only the platform's ports do)", async () => {
    const r = await build({
      entryPoints: [`${root}lib/gateway/assemble.ts`],
      bundle: true,
      write: false,
      platform: "neutral",
      format: "esm",
      metafile: true,
      logLevel: "silent",
      // npm packages are the runtime's to resolve; the question is what lib/ itself reaches.
      packages: "external",
      external: ["node:*"],
    });
    const runtime: string[] = [];
    for (const [file, info] of Object.entries(r.metafile.inputs)) {
      for (const i of info.imports) if (i.external && i.path.startsWith("node:")) runtime.push(`${file} imports ${i.path}`);
    }
    assert.deepEqual(runtime, []);
    // The ports' Node side is not in the graph either.
    const files = Object.keys(r.metafile.inputs);
    assert.deepEqual(files.filter((f) => f.startsWith("lib/node/") || f === "lib/auth/ldap.ts" || f === "lib/upstream/pools.ts"), []);
  });

  describe("a gateway assembled from Web-API ports", () => {
    let cluster: Cluster;
    before(async () => {
      cluster = await startCluster();
      await cluster.sql.unsafe("create role edge login");
      await cluster.writeHba("host all edge 127.0.0.1/32 trust\n", { reload: true });
    });
    after(async () => cluster?.stop());

    test("answers a query; an ldap line without a directory client is 08001, never a pass", async () => {
      const files = { "/etc/hbagate/pg_hba.conf": "host all edge all trust\nhost all dir all ldap ldapserver=ldap.invalid ldapprefix=\"uid=\" ldapsuffix=\",dc=x\"\n" };
      const settings = loadSettings({ HBAGATE_HBA_FILE: "/etc/hbagate/pg_hba.conf", HBAGATE_UPSTREAM_HOST: "127.0.0.1", HBAGATE_UPSTREAM_PORT: String(cluster.port) });
      const platform: Platform = {
        files: { ...memorySource(files), absolute: (p) => p },
        secrets: undefined,
        mac: javascriptMac(),
        host: { interfaces: () => [], reverseLookup: async () => undefined, forwardLookup: async () => [] },
        reachable: () => async () => "ok",
        ldap: undefined,
        httpsGet: undefined,
        upstream: (s, c) => new Pools(s, c),
        peer: () => ({ transport: "host", address: "127.0.0.1", encrypted: true }),
        clientCertificates: NO_CLIENT_CERTIFICATES,
        embeddedUpstream: undefined,
        webSockets: undefined,
      };
      const logs: unknown[] = [];
      const gateway = await assembleGateway(settings, (e) => logs.push(e), platform, { defaultHba: undefined });
      assert.ok(gateway, JSON.stringify(logs));
      try {
        const ask = (user: string, password?: string) =>
          gateway.app.request("/v1/postgres/sql", {
            method: "POST",
            headers: { "content-type": "application/json", authorization: "Basic " + btoa(`${user}:${password ?? ""}`) },
            body: JSON.stringify({ query: "select current_user as u" }),
          });
        const ok = await ask("edge");
        assert.deepEqual([ok.status, ((await ok.json()) as { rows: unknown }).rows], [200, [{ u: "edge" }]]);
        const dir = await ask("dir", "secret");
        const body = (await dir.json()) as { error?: { code?: string } };
        assert.deepEqual([dir.status, body.error?.code], [503, "08001"], JSON.stringify(body));
      } finally {
        await gateway.close();
      }
    });
  });
});
