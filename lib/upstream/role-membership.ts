// Role membership for `+group` and `samerole`, read from the upstream's
// catalogs (pg_auth_members) with a service login and cached briefly.
// The transitive walk is PostgreSQL's is_member_of_role_nosuper: superusers
// are members only of what they were granted.
import type { ServiceQuery } from "./service-query.ts";
import { membershipFromGraph, type RoleGraph } from "../hba/roles.ts";
import { fromDriverError } from "./errors.ts";
import { GatewayError, SQLSTATE } from "../errors.ts";

export interface RoleMembershipOptions {
  /** How long a snapshot of the role graph is used, in milliseconds. */
  readonly ttlMs: number;
  readonly now?: () => number;
}

export class RoleMembership {
  private snapshot: { at: number; isMember: (u: string, r: string) => boolean } | undefined;
  private loading: Promise<(u: string, r: string) => boolean> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly query: ServiceQuery,
    private readonly options: RoleMembershipOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  private async load(): Promise<(u: string, r: string) => boolean> {
    try {
      const rows = await this.query<{ role: string; members: string[] }>(`
        select r.rolname as role,
               coalesce(array_agg(m.rolname) filter (where m.rolname is not null), '{}') as members
        from pg_roles r
        left join pg_auth_members am on am.roleid = r.oid
        left join pg_roles m on m.oid = am.member
        group by r.rolname`);
      const graph: Record<string, string[]> = {};
      for (const row of rows) graph[row.role] = row.members;
      const isMember = membershipFromGraph(graph as RoleGraph);
      this.snapshot = { at: this.now(), isMember };
      return isMember;
    } catch (err) {
      // No answer means no membership decision: the request fails, it is never let through.
      const e = fromDriverError(err);
      // The gateway's own login refused: a fault of the gateway's configuration, not the caller's
      // credentials, and the service role's name is not the caller's business (the log has it).
      if (e.code.startsWith("28")) {
        throw new GatewayError({ code: SQLSTATE.sqlclientUnableToEstablishSqlconnection, message: "role membership cannot be read: the gateway's own login was refused" }, { cause: err });
      }
      throw e;
    }
  }

  async isMember(user: string, role: string): Promise<boolean> {
    const s = this.snapshot;
    if (s && this.now() - s.at < this.options.ttlMs) return s.isMember(user, role);
    // Concurrent requests share one catalog query.
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return (await this.loading)(user, role);
  }

  /** Forget the snapshot (configuration reload). */
  clear(): void {
    this.snapshot = undefined;
  }
}
