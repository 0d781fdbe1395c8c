// `hbagate hba check|match`: the rules engine on the command line. The output
// is a contract other tools parse; see docs/hba-command.md.
import { parseArgs } from "node:util";
import type { ConfigSource } from "../config/source.ts";
import { parseClientAddress, unmapIpv4 } from "../hba/address.ts";
import { formatError, loadHba } from "../hba/load.ts";
import { matchHba, type ConnectionFacts, type MatchEnvironment } from "../hba/match.ts";
import { membershipFromGraph, roleGraphFromJson } from "../hba/roles.ts";
import type { HbaFile } from "../hba/rule.ts";
import { fileRuleRows } from "../hba/view.ts";

export interface CliIo {
  readonly source: ConfigSource;
  /** Absolute path for a path given on the command line. */
  absolute(path: string): string;
  /** How to show a path to the user (relative to the working directory when inside it). */
  display(path: string): string;
  /**
   * This machine's interfaces and DNS, as the running gateway sees them, for
   * samehost, samenet and host-name lines. Without it those lines match no one.
   */
  readonly host?: Omit<MatchEnvironment, "isMember">;
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const HBA_USAGE = `usage:
  hbagate hba check FILE [--json]
  hbagate hba match FILE (--local | --address IP [--ssl]) --database D --user U [--replication] [--roles FILE] [--json]
`;

const usage = (why: string): CliResult => ({ code: 2, stdout: "", stderr: `hbagate hba: ${why}\n${HBA_USAGE}` });

function errorLines(file: HbaFile, io: CliIo): string {
  return file.errors.map((e) => formatError({ ...e, file: io.display(e.file) }) + "\n").join("");
}

function check(path: string, json: boolean, io: CliIo): CliResult {
  const file = loadHba(io.absolute(path), io.source);
  const code = file.errors.length > 0 ? 1 : 0;
  // No entries at all: an error of the whole file, which the view has no row for.
  const empty = file.entries.length === 0;
  if (json) return { code, stdout: JSON.stringify(fileRuleRows(file), null, 2) + "\n", stderr: empty ? errorLines(file, io) : "" };
  if (code !== 0) {
    const n = file.errors.length;
    const why = empty ? "no rules" : `${n} invalid line${n === 1 ? "" : "s"}`;
    return { code, stdout: errorLines(file, io), stderr: `${io.display(path)}: ${why}; the file would be rejected\n` };
  }
  const n = file.rules.length;
  return { code, stdout: `${io.display(path)}: ${n} rule${n === 1 ? "" : "s"}, no errors\n`, stderr: "" };
}

async function match(path: string, values: Record<string, string | boolean | undefined>, io: CliIo): Promise<CliResult> {
  const local = values.local === true;
  const addressText = values.address;
  if (local === (typeof addressText === "string")) return usage("give exactly one of --local and --address");
  if (local && values.ssl) return usage("--ssl applies to --address connections only");
  const database = values.database;
  const user = values.user;
  if (typeof database !== "string" || typeof user !== "string") return usage("--database and --user are required");

  let isMember: (u: string, r: string) => boolean = () => false;
  if (typeof values.roles === "string") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(io.source.readFile(io.absolute(values.roles)));
    } catch (err) {
      return { code: 2, stdout: "", stderr: `hbagate hba: cannot read roles file "${values.roles}": ${(err as Error).message}\n` };
    }
    const graph = roleGraphFromJson(parsed);
    if (typeof graph === "string") return { code: 2, stdout: "", stderr: `hbagate hba: roles file "${values.roles}": ${graph}\n` };
    isMember = membershipFromGraph(graph);
  }

  let facts: ConnectionFacts;
  if (local) {
    facts = { transport: "local", ssl: false, database, user, replication: values.replication === true };
  } else {
    const address = parseClientAddress(addressText as string);
    if (!address) return usage(`invalid client address "${addressText as string}"`);
    facts = { transport: "host", address: unmapIpv4(address), ssl: values.ssl === true, database, user, replication: values.replication === true };
  }

  const file = loadHba(io.absolute(path), io.source);
  if (file.errors.length > 0) {
    return { code: 1, stdout: errorLines(file, io), stderr: `${io.display(path)}: invalid, no rule is used\n` };
  }
  const { rule } = await matchHba(file.rules, facts, { ...io.host, isMember });
  if (values.json) {
    const out = rule
      ? { file_name: rule.file, line_number: rule.line, auth_method: rule.method.name, options: rule.options.length ? rule.options : null }
      : { line_number: null };
    return { code: 0, stdout: JSON.stringify(out) + "\n", stderr: "" };
  }
  if (!rule) return { code: 0, stdout: "no matching line: the connection is rejected (no pg_hba.conf entry)\n", stderr: "" };
  const opts = rule.options.length ? ` ${rule.options.join(" ")}` : "";
  return { code: 0, stdout: `${io.display(rule.file)}:${rule.line}: ${rule.method.name}${opts}\n  ${rule.raw.trim()}\n`, stderr: "" };
}

export async function hbaCommand(args: readonly string[], io: CliIo): Promise<CliResult> {
  if (args.includes("--help") || args.includes("-h")) return { code: 0, stdout: HBA_USAGE, stderr: "" };
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: "boolean" },
        local: { type: "boolean" },
        address: { type: "string" },
        ssl: { type: "boolean" },
        database: { type: "string" },
        user: { type: "string" },
        replication: { type: "boolean" },
        roles: { type: "string" },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const [sub, file, ...extra] = parsed.positionals;
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);
  if (file === undefined) return usage("missing FILE");
  if (sub === "check") {
    const misplaced = Object.keys(parsed.values).find((k) => k !== "json");
    if (misplaced) return usage(`--${misplaced} is an option of "match"`);
    return check(file, parsed.values.json === true, io);
  }
  if (sub === "match") return match(file, parsed.values, io);
  return usage(`unknown command "${sub ?? ""}"`);
}
