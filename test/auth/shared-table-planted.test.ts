// A shared failure table planted by a database user (found by a red team): a
// role allowed to create tables where the name resolves (public, on
// PostgreSQL 14 and older every role) made "hbagate_failures" first, with a
// trigger that drops every count and runs its code as the service user. The
// gateway uses only a plain table owned by the service user or a superuser:
// the planted one is never written to, its trigger never runs, the log says
// why, and each instance's own brake still applies.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import postgres from "postgres";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { nodeSettings, startNodeGateway } from "../harness/gateway.ts";
import { basic, postSqlTo, statusAndCode } from "../harness/http.ts";

const TABLE = "hbagate_failures";
const LOCK_AFTER = 3;

describe("a shared failure table planted by a database user", () => {
  let cluster: Cluster;
  let a: RunningGateway;
  let b: RunningGateway;
  const logs: LogEvent[] = [];

  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(
      `create role svc login password 'svc-pw'; grant create on schema public to svc;
       create role alice login password 'right-alice';
       -- PostgreSQL <= 14's default for every role; granted here on 15.
       create role mallory login password 'mallory-pw'; grant create on schema public to mallory;`,
    );
    await cluster.writeHba(`host all svc,alice,mallory 127.0.0.1/32 scram-sha-256\n`, { reload: true });
    // Mallory, an ordinary database user, before the operator turns the shared brake on.
    const m = postgres({ host: "127.0.0.1", port: cluster.port, user: "mallory", password: "mallory-pw", database: "postgres", max: 1, onnotice: () => {} });
    try {
      await m.unsafe(`
        create table public.${TABLE} (pair text primary key, failures integer not null, first_at timestamptz not null, locked_until timestamptz);
        create table public.red2_witness (who text, member_of_svc boolean);
        grant all on public.${TABLE}, public.red2_witness to public;
        create function public.red2_swallow() returns trigger language plpgsql as $$
        begin
          begin execute 'grant svc to mallory'; exception when others then null; end;
          insert into public.red2_witness values (current_user, pg_has_role('mallory', 'svc', 'member'));
          return null; -- no count is ever stored
        end $$;
        create trigger red2_swallow before insert or update on public.${TABLE} for each row execute function public.red2_swallow();
      `);
    } finally {
      await m.end();
    }
    const hbaFile = await cluster.writeFile("gateway_hba.conf", `host all alice,mallory 127.0.0.1/32 scram-sha-256\n`);
    const settings = nodeSettings({
      HBAGATE_HBA_FILE: hbaFile,
      HBAGATE_SERVICE_USER: "svc",
      HBAGATE_SERVICE_PASSWORD: "svc-pw",
      HBAGATE_AUTH_SHARED_TABLE: TABLE,
      HBAGATE_AUTH_LOCK_AFTER: String(LOCK_AFTER),
      HBAGATE_AUTH_SLOW_AFTER: "100",
      HBAGATE_POOL_MAX: "2",
    }, cluster.port);
    [a, b] = await Promise.all([startNodeGateway(settings, logs), startNodeGateway(settings, logs)]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await cluster?.stop();
  });

  const ask = async (g: RunningGateway, user: string, password: string) => {
    return statusAndCode(await postSqlTo(g.urls[0]!, { query: "select 1 as n" }, { headers: { authorization: basic(user, password) } }));
  };

  test("the planted table is never used: its trigger never runs as the service user, the log names its owner, and each instance's own brake still locks", async () => {
    const seen: string[] = [];
    for (let i = 0; i < LOCK_AFTER; i++) seen.push(await ask(a, "alice", "wrong"));
    seen.push(await ask(a, "alice", "right-alice"));
    assert.deepEqual(seen, [...Array(LOCK_AFTER).fill("401 28P01"), "429 08004"]);
    const witness = await cluster.sql.unsafe(`select who, member_of_svc from public.red2_witness`);
    assert.equal(witness.length, 0, `mallory's trigger ran: ${JSON.stringify([...witness])}`);
    const [membership] = await cluster.sql`select pg_has_role('mallory', 'svc', 'member') as m`;
    assert.equal(membership!.m, false);
    assert.ok(
      logs.some((l) => l.msg === "the shared failure table cannot be used; each instance counts failures on its own meanwhile" && String(l.error).includes('owned by "mallory"')),
      JSON.stringify(logs.filter((l) => l.level !== "info")),
    );
    assert.equal((await cluster.sql.unsafe(`select count(*)::int as n from public.${TABLE}`))[0]!.n, 0);
  });
});
