// The bound on one connection's answer (2 x HBAGATE_MAX_RESPONSE_BYTES +
// 8 x HBAGATE_MAX_RESPONSE_ROWS + 1 MiB of what the server sends after a
// request), found by a red team to count notices, which the gateway drops: a
// one-row result after a RAISE NOTICE loop was cut with 507. Notices no longer
// count. And a 507 says what became of the statement: an INSERT … RETURNING
// over the limit may have committed, and the answer's detail must not say
// otherwise.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic, postSqlTo } from "../harness/http.ts";

describe("the answer bound, notices, and what a 507 says of a write", () => {
  let cluster: Cluster;
  let g: RunningGateway;
  const logs: LogEvent[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role alice login password 'pw'; create table public.red2_t (id int, v text); create function public.red2_noisy(n int) returns int language plpgsql as $f$ begin for i in 1..n loop raise notice 'step % of the migration: %', i, repeat('.', 40); end loop; return n; end $f$; grant all on public.red2_t to alice;`);
    await cluster.writeHba(`host all alice 127.0.0.1/32 scram-sha-256\n`, { reload: true });
    const hbaFile = await cluster.writeFile("gateway_hba.conf", `host all alice 127.0.0.1/32 scram-sha-256\n`);
    g = await startNodeGateway(
      nodeSettings({
        HBAGATE_HBA_FILE: hbaFile,
        // Bound: 2 x 100 kB + 8 x 100 + 1 MiB, about 1.25 MB.
        HBAGATE_MAX_RESPONSE_BYTES: "100000",
        HBAGATE_MAX_RESPONSE_ROWS: "100",
        HBAGATE_POOL_MAX: "1",
      }, cluster.port),
      logs,
    );
  });
  after(async () => {
    await g?.close();
    await cluster?.stop();
  });

  const ask = async (query: string) => {
    return postSqlTo(g.urls[0]!, { query }, { headers: { authorization: basic("alice", "pw") } });
  };

  test("a one-row result after 40,000 notices is answered (notices are not part of any response)", async () => {
    const r = await ask(`select public.red2_noisy(40000) as n`);
    assert.equal(r.status, 200, `status ${r.status} ${JSON.stringify(r.body.error)}`);
  });

  test("the connection cut under one request serves the next caller", async () => {
    await ask(`select public.red2_noisy(40000) as n`);
    const r = await ask(`select 1 as n`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  /** The 507's detail agrees with the table: a kept row is never called cancelled, a missing one never called completed. */
  const assertTruthful = async (id: number, value: number) => {
    const r = await ask(`insert into public.red2_t values (${id}, repeat('x', ${value})) returning v`);
    assert.equal(r.status, 507, JSON.stringify(r.body));
    const detail = (r.body.error as { detail?: string } | undefined)?.detail ?? "";
    const written = (await cluster.sql`select count(*)::int as n from public.red2_t where id = ${id}`)[0]!.n;
    if (written === 1) assert.match(detail, /ran to completion|may have completed/, `the row is there: ${detail}`);
    else assert.match(detail, /cancelled|may have completed/, `the row is not there: ${detail}`);
  };

  test("a 507 for an INSERT ... RETURNING cut by the connection's bound says the row may be there", async () => {
    await assertTruthful(2, 1_500_000);
  });

  test("a 507 for an INSERT ... RETURNING over the response limit says what became of the row", async () => {
    await assertTruthful(3, 150_000);
  });
});
