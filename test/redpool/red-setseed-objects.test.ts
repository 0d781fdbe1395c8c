// Red team (reseed in the reset's check): a role's own objects must not let a
// caller's setseed() choose the next caller's random() on the shared
// connection: functions and operators named like the ones the check calls,
// in a schema of the role's own put first by ALTER ROLE … SET search_path.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SharedRole } from "./shared-role.ts";

const HIJACK = `
  create schema evil authorization app;
  alter role app set search_path = evil, pg_catalog, public;
  set role app;
  create function evil.setseed(float8) returns void language sql as $$ select pg_catalog.setseed(0.42) $$;
  create function evil.gen_random_uuid() returns uuid language sql as $$ select '00000000-0000-0000-0000-000000000000'::uuid $$;
  create function evil.hashtextextended(text, bigint) returns bigint language sql as $$ select 0::bigint $$;
  create function evil.float8div(float8, float8) returns float8 language sql as $$ select 0.42::float8 $$;
  create function evil.pg_advisory_unlock_all() returns void language sql as $$ select pg_catalog.setseed(0.42) $$;
  create function evil.count(anyelement) returns bigint language sql as $$ select 0::bigint $$;
  create function evil.slash(float8, float8) returns float8 language sql as $$ select 0.42::float8 $$;
  create operator evil./ (leftarg = float8, rightarg = float8, function = evil.slash);
  create function evil.pg_prepared_statement() returns table(name text, statement text, prepare_time timestamptz, parameter_types regtype[], from_sql boolean, generic_plans bigint, custom_plans bigint) language sql as $$ select pg_catalog.setseed(0.42)::text, ''::text, now(), '{}'::regtype[], false, 0::bigint, 0::bigint where false $$;
  reset role;
`;

describe("red: the reset's reseed is not defeated by a role's own objects", () => {
  let shared: SharedRole;
  before(async () => {
    shared = await SharedRole.start(HIJACK);
  });
  after(() => shared?.stop());

  test("setseed, then the next caller's random() is not predictable", async () => {
    const [expected] = await shared.cluster.sql.unsafe(`select setseed(0.42), random() as r`);
    const seen = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const a = await shared.post({ query: "select setseed(0.42), current_setting('search_path') as sp" });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      const next = await shared.post({ query: "select random() as r" });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      assert.notEqual(next.body.rows[0].r, Number(expected!.r), "the next caller's random() was chosen by the previous caller");
      seen.add(next.body.rows[0].r);
    }
    assert.equal(seen.size, 5);
  });

  test("the caller's session-level search_path games (set_config, SET) within the request", async () => {
    const [expected] = await shared.cluster.sql.unsafe(`select setseed(0.42), random() as r`);
    for (const q of [
      "select set_config('search_path', 'evil, pg_catalog', false), setseed(0.42)",
      "do $$ begin perform set_config('search_path', 'evil', false); perform pg_catalog.setseed(0.42); end $$",
      "do $$ begin execute 'set search_path = pg_temp, evil'; perform pg_catalog.setseed(0.42); end $$",
    ]) {
      const a = await shared.post({ query: q });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      const next = await shared.post({ query: "select random() as r" });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      assert.notEqual(next.body.rows[0].r, Number(expected!.r), `after ${q}: the next caller's random() was chosen by the previous caller`);
    }
  });

  test("a request that fails or leaves a transaction open does not hand its seed on", async () => {
    const [expected] = await shared.cluster.sql.unsafe(`select setseed(0.42), random() as r`);
    for (const q of ["select setseed(0.42), 1/0", "do $$ begin perform setseed(0.42); commit; perform 1/0; end $$"]) {
      await shared.post({ query: q });
      const next = await shared.post({ query: "select random() as r" });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      assert.notEqual(next.body.rows[0].r, Number(expected!.r), `after ${q}`);
    }
    await shared.post({ queries: [{ query: "select setseed(0.42)" }, { query: "select 1" }] });
    const next = await shared.post({ query: "select random() as r" });
    assert.notEqual(next.body.rows[0].r, Number(expected!.r), "after a batch");
  });
});
