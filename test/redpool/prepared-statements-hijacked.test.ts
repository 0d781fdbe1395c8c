// Red team (red16): the statements the gateway prepares on a pooled connection (hbagate_N, a
// query's second sighting) share PostgreSQL's namespace with statements prepared in SQL, which a
// DO block can do (EXECUTE 'DEALLOCATE …' / 'PREPARE …'). The gateway remembers text -> name per
// connection and sends a Bind for the name, trusting that the name is still its statement.
// Promised: nothing one request leaves on the session reaches the next (another end user's).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createApp } from "../../lib/http/app.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { oauthSettings, startIssuer, type Issuer } from "../harness/oauth-issuer.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testDeps, testPools } from "../http/deps.ts";

describe("red16: an end user deallocates or replaces the gateway's own prepared statements", () => {
  let cluster: Cluster;
  let issuer: Issuer;
  before(async () => {
    [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
    await cluster.sql.unsafe(`
      create role enduser login;
      create table todos (owner text not null, item text not null);
      alter table todos enable row level security;
      create policy own on todos
        using (owner = nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub')
        with check (owner = nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub');
      grant select, insert on todos to enduser;
      insert into todos values ('bob', 'bob-1'), ('mallory', 'm1');
    `);
    await cluster.writeHba("host all enduser 127.0.0.1/32 trust\n", { reload: true });
  });
  after(async () => {
    await issuer?.stop();
    await cluster?.stop();
  });

  /** A fresh one-connection pool (HBAGATE_POOL_MAX=1) and an oauth app over it. */
  const gateway = () => {
    const pools = testPools(cluster.port, { max: 1 });
    const deps = testDeps(pools, `host all enduser 10.0.0.0/8 oauth issuer=${issuer.url} scope=todo delegate_ident_mapping=1`, {
      caller: { anonymousUser: undefined, bearerRole: { claim: "role", fallback: undefined } },
    });
    const app = createApp({ ...deps, oauth: oauthSettings(issuer, deps.log) });
    const run = async (sub: string, query: string) => postSql(app, { query }, { authorization: `Bearer ${await issuer.sign({ sub, role: "enduser", scope: "todo" })}` });
    return { pools, run };
  };
  const BOBS = "select item from todos order by item";

  test("a statement the gateway prepared, deallocated by one end user, does not fail every later request of another", async () => {
    const { pools, run } = gateway();
    try {
      // Bob's query, seen twice: prepared on the connection.
      for (let i = 0; i < 2; i++) assert.deepEqual((await run("bob", BOBS)).body.rows, [{ item: "bob-1" }]);
      // Mallory drops every statement the gateway prepared for requests (not the reset's).
      const drop = await run(
        "mallory",
        `do $do$ declare n text; begin
           for n in select name from pg_prepared_statements where not from_sql and name like 'hbagate\\_%' and name not like 'hbagate\\_reset\\_%' loop
             execute format('deallocate %I', n);
           end loop;
         end $do$`,
      );
      void drop;
      const after = await run("bob", BOBS);
      assert.equal(after.status, 200, `bob's ordinary query after mallory's request: ${JSON.stringify(after.body)}`);
      assert.deepEqual(after.body.rows, [{ item: "bob-1" }]);
    } finally {
      await pools.close();
    }
  });

  test("a statement the gateway prepared, replaced by one end user's SQL, never answers another's request", async () => {
    const { pools, run } = gateway();
    try {
      for (let i = 0; i < 2; i++) assert.deepEqual((await run("bob", BOBS)).body.rows, [{ item: "bob-1" }]);
      // Mallory replaces Bob's statement with one of hers, and every statement the reset named
      // with one that does nothing.
      const swap = await run(
        "mallory",
        `do $do$ declare n text; begin
           select name into n from pg_prepared_statements where statement = '${BOBS}' and not from_sql;
           execute format('deallocate %I', n);
           execute format($p$prepare %I as select 'planted by mallory'::text as item$p$, n);
           for n in select name from pg_prepared_statements where not from_sql and name like 'hbagate\\_reset\\_%' and name <> '' loop
             execute format('deallocate %I', n);
             execute format('prepare %I as select true', n);
           end loop;
         end $do$`,
      );
      void swap;
      const after = await run("bob", BOBS);
      assert.equal(after.status, 200, JSON.stringify(after.body));
      assert.deepEqual(after.body.rows, [{ item: "bob-1" }], "bob's query answered by mallory's statement");
    } finally {
      await pools.close();
    }
  });
});
