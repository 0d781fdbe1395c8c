// Red-team (red2): the raw answer bound (2 x HBAGATE_MAX_RESPONSE_BYTES +
// 8 x HBAGATE_MAX_RESPONSE_ROWS + 1 MiB) counts every byte the server sends,
// notices included, though notices are dropped (onnotice: () => {}) and never
// reach the response. A statement whose result is one tiny row but which
// raises many notices (a maintenance function, a migration's DO block, a
// RAISE NOTICE loop, VACUUM VERBOSE) is cut with 53400/507, and any write it
// made is rolled back (the backend loses its client). The INSERT ... RETURNING
// checks are informational (todo): a 507 there means committed, cut or not.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadSettings } from "../../lib/config/settings.ts";
import type { LogEvent } from "../../lib/log.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

describe("red2: the raw answer bound and notices", () => {
  let cluster: Cluster;
  let g: RunningGateway;
  const logs: LogEvent[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role alice login password 'pw'; create table public.red2_t (id int, v text); create function public.red2_noisy(n int) returns int language plpgsql as $f$ begin for i in 1..n loop raise notice 'step % of the migration: %', i, repeat('.', 40); end loop; return n; end $f$; grant all on public.red2_t to alice;`);
    await cluster.writeHba(`host all alice 127.0.0.1/32 scram-sha-256\n`, { reload: true });
    const hbaFile = await cluster.writeFile("gateway_hba.conf", `host all alice 127.0.0.1/32 scram-sha-256\n`);
    const gw = await startGateway(
      loadSettings({
        HBAGATE_PORT: "0",
        HBAGATE_HBA_FILE: hbaFile,
        HBAGATE_UPSTREAM_HOST: "127.0.0.1",
        HBAGATE_UPSTREAM_PORT: String(cluster.port),
        // Bound: 2 x 100 kB + 8 x 100 + 1 MiB, about 1.25 MB.
        HBAGATE_MAX_RESPONSE_BYTES: "100000",
        HBAGATE_MAX_RESPONSE_ROWS: "100",
        HBAGATE_POOL_MAX: "1",
      }),
      (e) => logs.push(e),
    );
    assert.ok(gw, JSON.stringify(logs));
    g = gw;
  });
  after(async () => {
    await g?.close();
    await cluster?.stop();
  });

  const ask = async (query: string) => {
    const res = await fetch(`${g.urls[0]}/v1/postgres/sql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Basic " + Buffer.from("alice:pw").toString("base64") },
      body: JSON.stringify({ query }),
    });
    return { status: res.status, body: (await res.json()) as { rows?: unknown[]; error?: { code?: string; message?: string } } };
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

  test("a 507 for an INSERT ... RETURNING cut by the raw bound: is the row committed?", { todo: "informational: committed, as for the ordinary 507 below; the cut adds no new lie" }, async () => {
    const r = await ask(`insert into public.red2_t values (2, repeat('x', 1500000)) returning v`);
    await new Promise((res) => setTimeout(res, 300));
    const written = (await cluster.sql`select count(*)::int as n from public.red2_t where id = 2`)[0]!.n;
    assert.ok(!(r.status === 507 && written === 1), `status ${r.status} ${JSON.stringify(r.body.error)} but the row was committed (${written})`);
  });

  test("control: an INSERT ... RETURNING over the response limit but under the raw bound (the ordinary 507)", { todo: "informational: pre-existing, autocommit writes are committed before the 507" }, async () => {
    const r = await ask(`insert into public.red2_t values (3, repeat('x', 150000)) returning v`);
    await new Promise((res) => setTimeout(res, 300));
    const written = (await cluster.sql`select count(*)::int as n from public.red2_t where id = 3`)[0]!.n;
    assert.ok(!(r.status === 507 && written === 1), `status ${r.status} ${JSON.stringify(r.body.error)} but the row was committed (${written})`);
  });
});
