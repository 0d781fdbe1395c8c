// The file-backed part of the configuration (rules, verifier file), built
// whole and swapped whole: at start an invalid set stops the process, on
// reload it leaves the running set in force, as PostgreSQL does.
import { parseVerifierFile, type VerifierFile } from "../auth/verifier-file.ts";
import { fileSource } from "../config/file-source.ts";
import { formatError, loadHba } from "../hba/load.ts";
import type { HbaRule } from "../hba/rule.ts";
import type { LogEvent } from "../http/app.ts";

export interface Configuration {
  readonly rules: readonly HbaRule[];
  readonly verifierFile: VerifierFile | undefined;
}

export interface ConfigurationPaths {
  readonly hba: string;
  readonly verifier: string | undefined;
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
  if (hba.errors.length > 0 || !verifierOk) return undefined;
  return Object.freeze({ rules: hba.rules, verifierFile });
}

export function usesMembership(rule: HbaRule): boolean {
  return rule.users.some((u) => u.kind === "member") || rule.databases.some((d) => d.kind === "samerole");
}
