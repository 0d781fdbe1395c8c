// Rows shaped like PostgreSQL's pg_hba_file_rules view, for `hbagate hba
// check --json` and for comparing with a real server.
import { formatAddress } from "./address.ts";
import type { HbaFile, HbaRule } from "./rule.ts";

export interface HbaFileRuleRow {
  readonly rule_number: number | null;
  readonly file_name: string;
  readonly line_number: number;
  readonly type: string | null;
  readonly database: readonly string[] | null;
  readonly user_name: readonly string[] | null;
  readonly address: string | null;
  readonly netmask: string | null;
  readonly auth_method: string | null;
  readonly options: readonly string[] | null;
  readonly error: string | null;
}

function address(rule: HbaRule): { address: string | null; netmask: string | null } {
  const a = rule.address;
  if (a === null) return { address: null, netmask: null };
  switch (a.kind) {
    case "all":
    case "samehost":
    case "samenet":
      return { address: a.kind, netmask: null };
    case "hostname":
      return { address: a.name, netmask: null };
    case "cidr":
      return { address: formatAddress(a.network), netmask: formatAddress(a.mask) };
  }
}

export function ruleRow(rule: HbaRule): HbaFileRuleRow {
  return {
    rule_number: rule.ruleNumber,
    file_name: rule.file,
    line_number: rule.line,
    type: rule.type,
    database: rule.databases.map((d) => d.text),
    user_name: rule.users.map((u) => u.text),
    ...address(rule),
    auth_method: rule.method.name,
    options: rule.options.length > 0 ? rule.options : null,
    error: null,
  };
}

export function fileRuleRows(file: HbaFile): HbaFileRuleRow[] {
  return file.entries.map((e) =>
    "rule" in e
      ? ruleRow(e.rule)
      : {
          rule_number: null,
          file_name: e.error.file,
          line_number: e.error.line,
          type: null,
          database: null,
          user_name: null,
          address: null,
          netmask: null,
          auth_method: null,
          options: null,
          error: e.error.message,
        },
  );
}
