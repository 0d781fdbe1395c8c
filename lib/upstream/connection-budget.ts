// How many upstream connections are open, counted one by one as they open and
// close (not pools × their maximum), and whether one more may open: in total,
// for a role across its databases, and with a few kept for verification
// logins, so that one role's queries cannot make everyone's authentication
// wait. A connection counts from the moment it is asked for until it has
// closed: the server's max_connections sees it that long.

export interface BudgetLimits {
  /** Every upstream connection the gateway opens: requests', verification logins', its own lookups. */
  readonly maxTotal: number;
  /** One role's requests, across databases. */
  readonly maxPerRole: number;
  /** Of maxTotal, how many only verification logins may use. */
  readonly loginReserve: number;
}

export class ConnectionBudget {
  private total = 0;
  /** Connections counted for the gateway's whole life (its own lookups). */
  private fixed = 0;
  private readonly perRole = new Map<string, number>();

  constructor(readonly limits: BudgetLimits) {}

  /** Connections open, opening or still closing. */
  get open(): number {
    return this.total;
  }

  /** A role's connections open, opening or still closing. */
  openFor(role: string): number {
    return this.perRole.get(role) ?? 0;
  }

  /** Whether the total bound is what stops `role` (closing someone's idle connection would help). */
  fullFor(role: string): "total" | "role" | undefined {
    if (this.openFor(role) >= this.limits.maxPerRole) return "role";
    // The reserve never takes the last place requests have beside the gateway's own connections.
    const reserve = Math.min(this.limits.loginReserve, Math.max(0, this.limits.maxTotal - this.fixed - 1));
    if (this.total >= this.limits.maxTotal - reserve) return "total";
    return undefined;
  }

  /** Counts a client session's dedicated connection, when it fits beside the reserve (sessions have their own per-role bound). */
  tryOpenSession(): boolean {
    const reserve = Math.min(this.limits.loginReserve, Math.max(0, this.limits.maxTotal - this.fixed - 1));
    if (this.total >= this.limits.maxTotal - reserve) return false;
    this.total++;
    return true;
  }

  /** Counts one more connection for a role's requests, when it fits. */
  tryOpen(role: string): boolean {
    if (this.fullFor(role)) return false;
    this.total++;
    this.perRole.set(role, this.openFor(role) + 1);
    return true;
  }

  /** Counts a verification login, which may use the reserve too. */
  tryOpenLogin(): boolean {
    if (this.total >= this.limits.maxTotal) return false;
    this.total++;
    return true;
  }

  /**
   * Counts, for good, a connection the gateway needs whatever the bound (its
   * own catalog lookups, one per database). Throws when it leaves requests no
   * place at all: a configuration that could never answer a query.
   */
  openForGood(): void {
    if (this.limits.maxTotal - this.fixed - 1 < 1) {
      throw new RangeError(
        `HBAGATE_POOL_MAX_TOTAL=${this.limits.maxTotal} leaves no connection for requests beside the gateway's own lookups (HBAGATE_SERVICE_USER): raise it to at least ${this.fixed + 2}`,
      );
    }
    this.fixed++;
    this.total++;
  }

  /** A counted connection has closed (a role's, or with no role a login's or the gateway's own). */
  closed(role?: string): void {
    this.total--;
    if (role === undefined) return;
    const n = this.openFor(role) - 1;
    if (n > 0) this.perRole.set(role, n);
    else this.perRole.delete(role);
  }
}
