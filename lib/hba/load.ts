// A whole pg_hba.conf: tokenize (with includes), parse every line, collect
// errors per line the way the pg_hba_file_rules view does. A file with any
// error is invalid as a whole; callers must not use its rules (fail closed).
// So is a file with no entries at all (hba.c: load_hba), which would refuse
// every caller without saying why.
import type { ConfigSource } from "../config/source.ts";
import { parseHbaLine } from "./parse-line.ts";
import type { HbaError, HbaFile, HbaRule } from "./rule.ts";
import { tokenizeFile } from "./tokenize.ts";

export function loadHba(path: string, source: ConfigSource): HbaFile {
  const rules: HbaRule[] = [];
  const errors: HbaError[] = [];
  const entries: HbaFile["entries"][number][] = [];
  for (const tl of tokenizeFile(path, source)) {
    const parsed = tl.error === null ? parseHbaLine(tl, rules.length + 1) : { error: tl.error };
    if ("error" in parsed) {
      const error = { file: tl.file, line: tl.line, message: parsed.error };
      errors.push(error);
      entries.push({ error });
    } else {
      rules.push(parsed);
      entries.push({ rule: parsed });
    }
  }
  // PostgreSQL complains only when no line had an error; the view shows nothing for it.
  if (entries.length === 0) errors.push({ file: path, line: 1, message: noEntriesMessage(path) });
  return Object.freeze({ path, rules: Object.freeze(rules), errors: Object.freeze(errors), entries: Object.freeze(entries) });
}

/** PostgreSQL's words for a file without a single rule (empty, comments only, or includes that bring in nothing). */
export function noEntriesMessage(path: string): string {
  return `configuration file "${path}" contains no entries`;
}

/** `FILE:LINE: message`, the form the CLI and the logs use. */
export function formatError(e: HbaError): string {
  return `${e.file}:${e.line}: ${e.message}`;
}
