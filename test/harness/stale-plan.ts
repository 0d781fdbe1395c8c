// A procedure that writes and commits one row into `table`, then fails with
// "cached plan must not change result type": it EXECUTEs a statement prepared
// in SQL over a temp table whose columns it has just changed. The words of a
// stale plan from inside a statement that already did its work, which must
// never be taken for a plan that went stale before the statement ran (and the
// statement run again): the double-write tests of the request path and of the
// protocol client share it.
export function committingStalePlanProcedure(procedure: string, table: string): string {
  return `
      create procedure ${procedure}() language plpgsql as $p$
      declare k text := 'p' || floor(random() * 1e9)::bigint;
      begin
        insert into ${table} default values;
        commit;
        execute format('create temp table %I (a int)', k);
        execute format('prepare %I as select * from %I', k, k);
        execute format('alter table %I add column b int', k);
        execute format('execute %I', k);
      end $p$;`;
}
