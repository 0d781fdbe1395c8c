// First-match rule selection (hba.c: check_hba, check_db, check_role,
// check_hostname). Pure: role membership, DNS and the host's own interfaces
// come in as functions, and are only consulted when a line needs them.
import { inRange, sameAddress, type IpAddress } from "./address.ts";
import type { AddressMatcher, HbaRule, NameMatcher } from "./rule.ts";
import { buildRuleIndex, type RuleIndex } from "./rule-index.ts";

export interface ConnectionFacts {
  /** `local`: the Unix-socket listener (or a platform-authenticated call); `host`: any network request. */
  readonly transport: "local" | "host";
  /** Client address; required for `host`. */
  readonly address?: IpAddress;
  /** TLS (HTTPS) connection. */
  readonly ssl: boolean;
  readonly database: string;
  readonly user: string;
  /** A physical-replication request: only the `replication` keyword matches its database. */
  readonly replication: boolean;
}

export interface InterfaceAddress {
  readonly address: IpAddress;
  readonly netmask: IpAddress;
}

export interface MatchEnvironment {
  /**
   * PostgreSQL's is_member: true when both roles exist and `user` is `role` or a
   * direct or indirect member of it. Superusers get no special treatment.
   */
  isMember(user: string, role: string): boolean | Promise<boolean>;
  /** Reverse DNS of the client address (undefined when there is no name). */
  reverseLookup?(address: IpAddress): Promise<string | undefined>;
  /** Forward DNS of a name, all families. */
  forwardLookup?(name: string): Promise<readonly IpAddress[]>;
  /** This host's interface addresses, for samehost/samenet. */
  interfaces?(): readonly InterfaceAddress[];
}

export type MatchResult = { readonly rule: HbaRule } | { readonly rule: null };

/** Case-insensitive host-name comparison; a leading dot matches a suffix (hostname_match). */
function hostnameMatches(pattern: string, actual: string): boolean {
  const p = pattern.toLowerCase();
  const a = actual.toLowerCase();
  return p.startsWith(".") ? a.length >= p.length && a.endsWith(p) : a === p;
}

/** Per-connection DNS state, so one request does at most one reverse and one forward lookup. */
class HostnameCheck {
  private remote: Promise<string | undefined> | undefined;
  private verified: Promise<boolean> | undefined;
  constructor(
    private readonly client: IpAddress,
    private readonly env: MatchEnvironment,
  ) {}

  async matches(pattern: string): Promise<boolean> {
    const reverse = this.env.reverseLookup;
    if (!reverse) return false;
    this.remote ??= reverse(this.client).catch(() => undefined);
    const name = await this.remote;
    if (name === undefined || !hostnameMatches(pattern, name)) return false;
    // The reverse answer is only believed if the name resolves back to the client.
    this.verified ??= (async () => {
      const forward = this.env.forwardLookup;
      if (!forward) return false;
      const addrs = await forward(name).catch(() => []);
      return addrs.some((a) => sameAddress(a, this.client));
    })();
    return this.verified;
  }
}

/** Every address form but host names (which need the request's DNS state: HostnameCheck). */
function addressMatches(m: Exclude<AddressMatcher, { kind: "hostname" }>, client: IpAddress, env: MatchEnvironment): boolean {
  switch (m.kind) {
    case "all":
      return true;
    case "cidr":
      return inRange(client, m.network, m.mask.bytes);
    case "samehost":
      return (env.interfaces?.() ?? []).some((i) => sameAddress(i.address, client));
    case "samenet":
      return (env.interfaces?.() ?? []).some((i) => i.netmask.family === client.family && inRange(client, i.address, i.netmask.bytes));
  }
}

// The matchers below stay synchronous unless a role-membership lookup answers
// with a promise: awaiting every rule would cost a microtask per line.

function databaseMatches(list: readonly NameMatcher[], c: ConnectionFacts, env: MatchEnvironment, from = 0): boolean | Promise<boolean> {
  for (let i = from; i < list.length; i++) {
    const m = list[i]!;
    if (c.replication) {
      if (m.kind === "replication") return true;
      continue;
    }
    switch (m.kind) {
      case "all":
        return true;
      case "sameuser":
        if (c.database === c.user) return true;
        break;
      case "samerole": {
        const member = env.isMember(c.user, c.database);
        if (member === true) return true;
        if (member !== false) return member.then((ok) => ok || databaseMatches(list, c, env, i + 1));
        break;
      }
      case "replication":
        break;
      case "regex":
        if (m.regex.test(c.database)) return true;
        break;
      case "name":
      case "member":
        if (m.text === c.database) return true;
        break;
    }
  }
  return false;
}

/** check_role; exported for pg_ident.conf, whose database-user field has the same forms. */
export function userMatches(list: readonly NameMatcher[], user: string, env: Pick<MatchEnvironment, "isMember">, from = 0): boolean | Promise<boolean> {
  for (let i = from; i < list.length; i++) {
    const m = list[i]!;
    switch (m.kind) {
      case "member": {
        const member = env.isMember(user, m.role);
        if (member === true) return true;
        if (member !== false) return member.then((ok) => ok || userMatches(list, user, env, i + 1));
        break;
      }
      case "all":
        return true;
      case "regex":
        if (m.regex.test(user)) return true;
        break;
      default:
        if (m.text === user) return true;
    }
  }
  return false;
}

/** Built once per rules array (configurations are immutable), dropped with it. */
const indexes = new WeakMap<readonly HbaRule[], RuleIndex>();

/**
 * Up to this many lines, checking every line costs less than asking the
 * index (its lookups and merge allocate on every decision); past it, the
 * index keeps a decision flat in the file's length.
 */
const WALK_WITHOUT_INDEX = 16;

function candidates(rules: readonly HbaRule[], c: ConnectionFacts): readonly number[] | undefined {
  if (rules.length <= WALK_WITHOUT_INDEX) return undefined;
  let index = indexes.get(rules);
  if (!index) {
    index = buildRuleIndex(rules);
    indexes.set(rules, index);
  }
  return index.candidates(c.transport, c.address);
}

export async function matchHba(rules: readonly HbaRule[], c: ConnectionFacts, env: MatchEnvironment): Promise<MatchResult> {
  const client = c.address;
  if (c.transport === "host" && !client) throw new TypeError("a host connection needs a client address");
  // Host-name lines are rare: the DNS state is made when one is reached.
  let dns: HostnameCheck | undefined;
  // undefined: every line, in file order.
  const positions = candidates(rules, c);
  const count = positions ? positions.length : rules.length;
  for (let k = 0; k < count; k++) {
    const rule = rules[positions ? positions[k]! : k]!;
    if (rule.type === "local") {
      if (c.transport !== "local") continue;
    } else {
      if (c.transport === "local") continue;
      if (c.ssl ? rule.type === "hostnossl" : rule.type === "hostssl") continue;
      // No GSSAPI encryption over HTTP: hostgssenc never matches, hostnogssenc always may.
      if (rule.type === "hostgssenc") continue;
      const a = rule.address!;
      const address = a.kind === "hostname" ? (dns ??= new HostnameCheck(client!, env)).matches(a.name) : addressMatches(a, client!, env);
      if (address === false || (address !== true && !(await address))) continue;
    }
    const database = databaseMatches(rule.databases, c, env);
    if (database === false || (database !== true && !(await database))) continue;
    const user = userMatches(rule.users, c.user, env);
    if (user === false || (user !== true && !(await user))) continue;
    return { rule };
  }
  return { rule: null };
}
