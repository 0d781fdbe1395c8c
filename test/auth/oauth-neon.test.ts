// The unmodified Neon client with `authToken` (Neon Authorize's shape:
// Authorization: Bearer beside a connection string without a password) and
// drizzle-orm/neon-http, through /sql on a real socket, against a throwaway
// HTTPS issuer and a real PostgreSQL with row-level security on the claims.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { neon, neonConfig, NeonDbError } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-http";
import { sql as dsql } from "drizzle-orm";
import { pgTable, text } from "drizzle-orm/pg-core";
import { createApp } from "../../lib/http/app.ts";
import { nodePeer, startListeners, type Listening } from "../../lib/node/listeners.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { oauthSettings, startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { testDeps, testPools } from "../http/deps.ts";

const notes = pgTable("notes", { owner: text("owner").notNull(), body: text("body").notNull() });

describe("Neon's authToken and drizzle through /sql", () => {
  let cluster: Cluster;
  let pools: Pools;
  let issuer: Issuer;
  let listening: Listening;
  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe(`
      create role authenticated login;
      create table notes (owner text not null default (nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub'), body text not null);
      alter table notes enable row level security;
      create policy own on notes using (owner = nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub')
        with check (owner = nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub');
      grant select, insert on notes to authenticated;
    `);
    await cluster.writeHba("host all authenticated 127.0.0.1/32 trust\n", { reload: true });
    pools = testPools(cluster.port, { max: 1 });
    const deps = testDeps(pools, `host all authenticated 127.0.0.1/32 oauth issuer=${issuer.url} scope=notes delegate_ident_mapping=1\n`, { peer: nodePeer, maxBodyBytes: 1 << 20 });
    const app = createApp({ ...deps, oauth: oauthSettings(issuer, deps.log) });
    listening = await startListeners(app.fetch, { host: "127.0.0.1", port: 0, unixSocket: undefined, tls: undefined });
    const url = `${listening.urls[0]}/sql`;
    neonConfig.fetchEndpoint = () => url;
  });
  after(async () => {
    await listening?.close();
    await pools?.close();
    await issuer?.stop();
    await cluster?.stop();
  });

  const CONNECTION = "postgresql://authenticated@db.example.invalid/postgres";
  const tokenOf = (sub: string) => () => issuer.sign({ sub, role: "authenticated", scope: "notes" });

  test("neon(url, { authToken }): queries and a transaction batch run as the token's user, under its claims", async () => {
    const ann = neon(CONNECTION, { authToken: tokenOf("ann") });
    const ben = neon(CONNECTION, { authToken: tokenOf("ben") });
    await ann.query("insert into notes (body) values ($1)", ["ann's note"]);
    const [, mine] = await ben.transaction((tx) => [tx`insert into notes (body) values (${"ben's note"})`, tx`select owner, body from notes`]);
    assert.deepEqual(mine, [{ owner: "ben", body: "ben's note" }]);
    const claims = await ann.query("select current_user as u, current_setting('request.jwt.claims')::jsonb->>'sub' as sub");
    assert.deepEqual(claims, [{ u: "authenticated", sub: "ann" }]);
    // No token: the oauth line refuses (28000), as Neon's client reports it.
    await assert.rejects(neon(CONNECTION).query("select 1"), (e: unknown) => e instanceof NeonDbError && e.code === "28000");
  });

  test("claims forged in the connection string's options never replace the token's", async () => {
    const forged = `${CONNECTION}?options=${encodeURIComponent(`-c request.jwt.claims={"sub":"ann"}`)}`;
    const ben = neon(forged, { authToken: tokenOf("ben") });
    assert.deepEqual(await ben.query("select current_setting('request.jwt.claims')::jsonb->>'sub' as sub"), [{ sub: "ben" }]);
    assert.deepEqual(await ben.query("select owner from notes where owner = 'ann'"), [], "ann's rows stay hers");
  });

  test("drizzle-orm/neon-http with authToken: each user's rows only", async () => {
    const db = drizzle({ client: neon(CONNECTION, { authToken: tokenOf("cat") }) });
    await db.insert(notes).values({ owner: "cat", body: "cat's note" });
    const rows = await db.select().from(notes);
    assert.deepEqual(rows, [{ owner: "cat", body: "cat's note" }]);
    const [{ n }] = (await db.execute(dsql`select count(*)::int as n from notes`)).rows as [{ n: number }];
    assert.equal(n, 1);
  });
});
