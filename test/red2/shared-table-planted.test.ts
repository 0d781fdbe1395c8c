// Red-team (red2): the shared failure table is named without a schema
// (hbagate_failures, what HBAGATE_DEPLOY_SERVICE_USER uses) and made with
// CREATE TABLE IF NOT EXISTS: a table of that name that someone else planted
// first — any role with CREATE on a schema in the service user's search_path,
// which on PostgreSQL 14 and older is every role on `public` — is used as it
// is, whoever owns it. Its owner then decides the brake (rows deleted, or a
// trigger that drops every count: the brake silently goes per-instance, no
// log line) and runs code as the service user on every failed login (an
// invoker trigger; on PostgreSQL < 16 the session user may even grant
// membership in itself).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import postgres from "postgres";
import { loadSettings } from "../../lib/config/settings.ts";
import type { LogEvent } from "../../lib/log.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";

const TABLE = "hbagate_failures";
const LOCK_AFTER = 3;

describe("red2: a shared failure table planted by a database user", () => {
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
    const settings = loadSettings({
      HBAGATE_PORT: "0",
      HBAGATE_HBA_FILE: hbaFile,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: String(cluster.port),
      HBAGATE_SERVICE_USER: "svc",
      HBAGATE_SERVICE_PASSWORD: "svc-pw",
      HBAGATE_AUTH_SHARED_TABLE: TABLE,
      HBAGATE_AUTH_LOCK_AFTER: String(LOCK_AFTER),
      HBAGATE_AUTH_SLOW_AFTER: "100",
      HBAGATE_POOL_MAX: "2",
    });
    const [ga, gb] = await Promise.all([startGateway(settings, (e) => logs.push(e)), startGateway(settings, (e) => logs.push(e))]);
    assert.ok(ga && gb, JSON.stringify(logs));
    [a, b] = [ga, gb];
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await cluster?.stop();
  });

  const ask = async (g: RunningGateway, user: string, password: string) => {
    const res = await fetch(`${g.urls[0]}/v1/postgres/sql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64") },
      body: JSON.stringify({ query: "select 1 as n" }),
    });
    const body = (await res.json()) as { error?: { code?: string } };
    return res.status === 200 ? "200" : `${res.status} ${body.error?.code}`;
  };

  test("failures split between instances still lock the pair (the brake does not trust a table it does not own)", async () => {
    const seen: string[] = [];
    for (const g of [a, b, a, b]) seen.push(await ask(g, "alice", "wrong"));
    seen.push(await ask(a, "alice", "right-alice"));
    const witness = await cluster.sql.unsafe(`select who, member_of_svc from public.red2_witness`);
    assert.deepEqual(
      seen.at(-1),
      "429 08004",
      `answers ${seen.join(", ")}; mallory's trigger ran as ${JSON.stringify(witness.slice(0, 2))}; warnings logged: ${logs.filter((l) => l.level === "warn").length}`,
    );
  });
});
