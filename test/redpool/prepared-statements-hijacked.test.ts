// Red team (red16): the statements the gateway prepares on a pooled connection (hbagate_N, a
// query's second sighting) share PostgreSQL's namespace with statements prepared in SQL, which a
// DO block can do (EXECUTE 'DEALLOCATE …' / 'PREPARE …'). The gateway remembers text -> name per
// connection and sends a Bind for the name, trusting that the name is still its statement.
// Promised: nothing one request leaves on the session reaches the next (another end user's).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { endUserApp, startTodos, type Todos } from "../harness/todos-rls.ts";

describe("red16: an end user deallocates or replaces the gateway's own prepared statements", () => {
  let todos: Todos;
  before(async () => {
    todos = await startTodos([["bob", "bob-1"], ["mallory", "m1"]]);
  });
  after(() => todos?.stop());

  /** A fresh one-connection pool (HBAGATE_POOL_MAX=1) and an oauth app over it. */
  const gateway = () => {
    const { pools, run } = endUserApp(todos);
    return { pools, run: (sub: string, query: string) => run(sub, { query }) };
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
