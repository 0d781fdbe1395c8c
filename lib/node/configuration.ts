// The file-backed part of the configuration (rules, verifier file), built
// whole and swapped whole: at start an invalid set stops the process, on
// reload it leaves the running set in force, as PostgreSQL does.
import { parseVerifierFile, type VerifierFile } from "../auth/verifier-file.ts";
import { fileSource } from "../config/file-source.ts";
import { formatError, loadHba } from "../hba/load.ts";
import type { HbaRule } from "../hba/rule.ts";
import type { LogEvent } from "../http/app.ts";
import { loadIdent, type IdentFile } from "../ident/ident.ts";

export interface Configuration {
  readonly rules: readonly HbaRule[];
  readonly ident: IdentFile | undefined;
  readonly verifierFile: VerifierFile | undefined;
  /** Upstream passwords for roles that log in with configured credentials. */
  readonly roleCredentials: ReadonlyMap<string, string>;
}

export interface ConfigurationPaths {
  readonly hba: string;
  readonly ident: string | undefined;
  readonly verifier: string | undefined;
  readonly roleCredentials: string | undefined;
}

/** {"role": "password", …}; the message never repeats a value. */
function parseRoleCredentials(path: string, text: string): ReadonlyMap<string, string> | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return `${path}: not valid JSON (${(err as Error).message.replace(/"[^"]*"/g, "…")})`;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return `${path}: expected a JSON object mapping roles to passwords`;
  const map = new Map<string, string>();
  for (const [role, password] of Object.entries(json)) {
    if (typeof password !== "string" || password === "") return `${path}: the password for role "${role}" must be a non-empty string`;
    map.set(role, password);
  }
  return map;
}

/** Every problem is logged with file and line; undefined unless all of it is valid. */
export function loadConfiguration(paths: ConfigurationPaths, log: (e: LogEvent) => void): Configuration | undefined {
  const hba = loadHba(paths.hba, fileSource);
  for (const e of hba.errors) log({ level: "error", msg: "invalid pg_hba.conf line", error: formatError(e) });

  let verifierFile: VerifierFile | undefined;
  let verifierOk = true;
  if (paths.verifier !== undefined) {
    try {
      verifierFile = parseVerifierFile(paths.verifier, fileSource.readFile(paths.verifier));
      for (const e of verifierFile.errors) log({ level: "error", msg: "invalid verifier file line", error: `${e.file}:${e.line}: ${e.message}` });
      verifierOk = verifierFile.errors.length === 0;
    } catch (err) {
      log({ level: "error", msg: "cannot read the verifier file", file: paths.verifier, error: (err as Error).message });
      verifierOk = false;
    }
  }
  let ident: IdentFile | undefined;
  if (paths.ident !== undefined) {
    ident = loadIdent(paths.ident, fileSource);
    for (const e of ident.errors) log({ level: "error", msg: "invalid pg_ident.conf line", error: `${e.file}:${e.line}: ${e.message}` });
  }

  let roleCredentials: ReadonlyMap<string, string> | string = new Map();
  if (paths.roleCredentials !== undefined) {
    try {
      roleCredentials = parseRoleCredentials(paths.roleCredentials, fileSource.readFile(paths.roleCredentials));
    } catch (err) {
      roleCredentials = `${paths.roleCredentials}: ${(err as Error).message}`;
    }
    if (typeof roleCredentials === "string") log({ level: "error", msg: "invalid role credentials file", error: roleCredentials });
  }

  if (hba.errors.length > 0 || !verifierOk || (ident && ident.errors.length > 0) || typeof roleCredentials === "string") return undefined;
  return Object.freeze({ rules: hba.rules, ident, verifierFile, roleCredentials });
}

export function usesMembership(rule: HbaRule): boolean {
  return rule.users.some((u) => u.kind === "member") || rule.databases.some((d) => d.kind === "samerole");
}
