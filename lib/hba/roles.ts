// Role membership from a static graph: each role mapped to the roles that are
// its direct members. Membership is transitive, and a role is a member of
// itself, as in PostgreSQL's is_member_of_role_nosuper.

export type RoleGraph = Readonly<Record<string, readonly string[]>>;

export function membershipFromGraph(graph: RoleGraph): (user: string, role: string) => boolean {
  const exists = new Set<string>();
  for (const [role, members] of Object.entries(graph)) {
    exists.add(role);
    for (const m of members) exists.add(m);
  }
  return (user, role) => {
    if (!exists.has(user) || !exists.has(role)) return false;
    const seen = new Set<string>([role]);
    const queue = [role];
    while (queue.length > 0) {
      const current = queue.pop()!;
      if (current === user) return true;
      for (const m of graph[current] ?? []) {
        if (!seen.has(m)) {
          seen.add(m);
          queue.push(m);
        }
      }
    }
    return false;
  };
}

/** Validate parsed JSON as a RoleGraph; returns an error message for anything else. */
export function roleGraphFromJson(value: unknown): RoleGraph | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "expected a JSON object mapping each role to an array of its direct members";
  }
  for (const [role, members] of Object.entries(value)) {
    if (!Array.isArray(members) || !members.every((m) => typeof m === "string")) {
      return `members of role "${role}" must be an array of role names`;
    }
  }
  return value as RoleGraph;
}
