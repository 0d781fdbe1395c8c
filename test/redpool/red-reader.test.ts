// Red team (messages read as views of the socket's chunks): rows, errors and
// notices come out right whatever the chunking. The gateway reaches
// PostgreSQL through a proxy that re-chunks everything the server sends into
// random small pieces (1..N bytes, each its own write, some after a pause),
// so that messages straddle reads at every offset; one pooled connection.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { testApp } from "../harness/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "../http/deps.ts";
import type { Pools } from "../../lib/upstream/pools.ts";

function chunkingProxy(upstreamPort: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.setNoDelay(true);
    client.pipe(upstream);
    let queue: Buffer[] = [];
    let draining = false;
    const drain = async () => {
      if (draining) return;
      draining = true;
      while (queue.length) {
        const b = queue.shift()!;
        for (let at = 0; at < b.length; ) {
          const n = 1 + rand(rand(4) === 0 ? 7 : 9000);
          client.write(b.subarray(at, at + n));
          at += n;
          if (rand(8) === 0) await new Promise((r) => setImmediate(r));
        }
      }
      draining = false;
    };
    upstream.on("data", (d: Buffer) => {
      queue.push(Buffer.from(d));
      void drain();
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

describe("red: answers read as views of the socket's chunks", () => {
  let cluster: Cluster;
  let pools: Pools;
  let proxy: { port: number; close(): void };
  let app: ReturnType<typeof testApp>;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login`);
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    proxy = await chunkingProxy(cluster.port);
    pools = testPools(proxy.port, { max: 1, statementTimeout: 20000 });
    app = testApp(pools, "host all all all trust\n", { caller: { anonymousUser: "app" }, maxBodyBytes: 1024 * 1024, responseLimits: { maxRows: 1_000_000, maxBytes: 64 << 20 } });
  });
  after(async () => {
    await pools?.close();
    proxy?.close();
    await cluster?.stop();
  });
  const post = (body: unknown) => postSql(app, body);

  test("many rows of mixed widths and NULLs", async () => {
    for (let round = 0; round < 3; round++) {
      const r = await post({ query: "select i, case when i % 3 = 0 then null else repeat(chr(8364) || '😀' || i::text, i % 97) end as v, null::text as z from generate_series(1, 4000) i" });
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      assert.equal(r.body.rows.length, 4000);
      r.body.rows.forEach((row: any, k: number) => {
        const i = k + 1;
        const want = i % 3 === 0 ? null : ("€😀" + i).repeat(i % 97);
        if (row.i !== i || row.v !== want || row.z !== null) assert.fail(`row ${i}: ${JSON.stringify(row).slice(0, 200)}`);
      });
    }
  });

  test("large rows across many chunks, then a small one", async () => {
    // Past one socket read (64 KiB) and across many; sizes kept to what the suite can afford.
    for (const size of [65535, 65536, 1 << 19]) {
      const r = await post({ query: "select md5(repeat('😀', $1::int)) as h, repeat('😀', $1::int) as big, null::int as n, 'after' as a", params: [size] });
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      const row = r.body.rows[0];
      assert.equal(row.big.length, size * 2);
      assert.equal(row.big, "😀".repeat(size));
      assert.equal(row.n, null);
      assert.equal(row.a, "after");
      const s = await post({ query: "select $1::text as x", params: ["small"] });
      assert.equal(s.body.rows[0].x, "small");
    }
  });

  test("many columns, most NULL", async () => {
    const cols = Array.from({ length: 1500 }, (_, i) => (i % 5 === 0 ? `'c${i}€' as c${i}` : `null as c${i}`)).join(", ");
    const r = await post({ query: `select ${cols} from generate_series(1, 50)` });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    for (const row of r.body.rows) for (let i = 0; i < 1500; i++) assert.equal(row[`c${i}`], i % 5 === 0 ? `c${i}€` : null);
  });

  test("an error after many rows, with a long multibyte message, then the connection is fine", async () => {
    const r = await post({ query: "select case when i = 20000 then (select 1/0) else i end as v, repeat('é', 100) as p from generate_series(1, 30000) i" });
    assert.equal(r.body.error?.code, "22012", JSON.stringify(r.body).slice(0, 300));
    const msg = "€😀".repeat(100_000);
    const e = await post({ query: "do $$ begin raise exception using message = repeat('€😀', 100000), detail = repeat('d', 70000), errcode = 'P0009'; end $$" });
    assert.equal(e.body.error?.code, "P0009", JSON.stringify(e.body).slice(0, 300));
    const got = String(e.body.error?.message);
    // hbagate shortens long messages; what it keeps must be the message's start, and well-formed.
    const kept = got.replace(/… \(\d+ more characters cut by hbagate\)$/, "");
    assert.ok(msg.startsWith(kept), "the error message is not the server's");
    assert.ok(!/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(kept), `the shortened message ends in a lone surrogate: ${JSON.stringify(kept.slice(-4))}`);
    const s = await post({ query: "select 1 as one" });
    assert.equal(s.body.rows[0].one, 1);
  });

  test("notices (many, large) do not disturb the rows around them", async () => {
    const r = await post({ query: "select i, pg_temp_notice(i) from generate_series(1,1) i" }).catch(() => undefined);
    void r;
    const d = await post({ query: "do $$ begin for i in 1..400 loop raise notice '%', repeat('n€', i); end loop; end $$" });
    assert.equal(d.status, 200, JSON.stringify(d.body).slice(0, 300));
    const s = await post({ query: "select string_agg(x::text, ',') as s from generate_series(1, 5000) x" });
    assert.equal(s.body.rows[0].s, Array.from({ length: 5000 }, (_, i) => i + 1).join(","));
  });

  test("a batch of statements, each answer intact", async () => {
    const queries = Array.from({ length: 20 }, (_, i) => ({ query: "select $1::text as v, repeat('x', $2::int) as p", params: [`q${i}😀`, (i * 7919) % 200000] }));
    const r = await post({ queries });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    const results = r.body.results ?? r.body;
    results.forEach((res: any, i: number) => {
      assert.equal(res.rows[0].v, `q${i}😀`);
      assert.equal(res.rows[0].p.length, (i * 7919) % 200000);
    });
  });
});
