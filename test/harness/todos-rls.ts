// End users of one role, `enduser`, behind an `oauth` line, and a table of
// theirs under row-level security on the verified claims (the policy
// docs/authentication.md shows): the set-up of every test that two end users
// of one pooled connection never see each other's rows.
import { createApp } from "../../lib/http/app.ts";
import type { Pools } from "../../lib/upstream/pools.ts";
import { postSql, testDeps, testPools } from "../http/deps.ts";
import { oauthSettings, startIssuer, type Issuer } from "./oauth-issuer.ts";
import { startCluster, type Cluster } from "./postgres.ts";

export const TODOS_RLS = `
  create role enduser login;
  create table todos (owner text not null, item text not null);
  alter table todos enable row level security;
  create policy own on todos
    using (owner = nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub')
    with check (owner = nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub');
  grant select, insert on todos to enduser;
`;

export interface Todos {
  readonly cluster: Cluster;
  readonly issuer: Issuer;
  stop(): Promise<void>;
}

/** A cluster with the table (and `rows`, as owner and item) and an issuer of tokens for `enduser`. */
export async function startTodos(rows: readonly (readonly [owner: string, item: string])[] = []): Promise<Todos> {
  const [cluster, issuer] = await Promise.all([startCluster(), startIssuer()]);
  await cluster.sql.unsafe(TODOS_RLS);
  for (const [owner, item] of rows) await cluster.sql`insert into todos values (${owner}, ${item})`;
  await cluster.writeHba("host all enduser 127.0.0.1/32 trust\n", { reload: true });
  return {
    cluster,
    issuer,
    async stop() {
      await issuer.stop();
      await cluster.stop();
    },
  };
}

/**
 * An oauth app over `pools` (a new one-connection pool, HBAGATE_POOL_MAX=1,
 * unless given): `run(sub, body)` posts `body` with a token of `sub`'s.
 */
export function endUserApp(todos: Todos, pools: Pools = testPools(todos.cluster.port, { max: 1 })) {
  const deps = testDeps(pools, `host all enduser 10.0.0.0/8 oauth issuer=${todos.issuer.url} scope=todo delegate_ident_mapping=1`, {
    caller: { anonymousUser: undefined, bearerRole: { claim: "role", fallback: undefined } },
  });
  const app = createApp({ ...deps, oauth: oauthSettings(todos.issuer, deps.log) });
  const run = async (sub: string, body: unknown) => postSql(app, body, { authorization: `Bearer ${await todos.issuer.sign({ sub, role: "enduser", scope: "todo" })}` });
  return { pools, run };
}
