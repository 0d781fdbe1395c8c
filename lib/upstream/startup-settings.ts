// A caller's startup parameters (application_name, options) as settings of
// its own request. Pools are per (database, role): were they part of the pool
// key, a caller could open a pool per distinct value and crowd everyone out.
// Applied with set_config at the start of the request, undone by the reset
// after it (session-reset.ts).
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { StartupParameters } from "../connection/caller.ts";

/** [name, value] pairs, in order. */
export type StartupSettings = readonly (readonly [string, string])[];

/**
 * `options` as libpq passes it to the server: `-c name=value` or
 * `--name=value`, separated by spaces, a backslash escaping the next
 * character (PostgreSQL 18, 20.1.4 and libpq's `options`). Anything else is
 * refused rather than ignored.
 */
function parseOptions(options: string): [string, string][] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === "\\" && i + 1 < options.length) {
      word += options[++i];
      inWord = true;
    } else if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  const out: [string, string][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const assignment = w === "-c" ? words[++i] : w.startsWith("--") ? w.slice(2) : w.startsWith("-c") ? w.slice(2) : undefined;
    const eq = assignment?.indexOf("=") ?? -1;
    if (assignment === undefined || eq <= 0) {
      throw gatewayError(SQLSTATE.protocolViolation, `invalid options: "${options}"`, { hint: "Only -c name=value (or --name=value) settings are accepted." });
    }
    out.push([assignment.slice(0, eq).replaceAll("-", "_"), assignment.slice(eq + 1)]);
  }
  return out;
}

export function startupSettings(startup: StartupParameters): StartupSettings {
  const out: [string, string][] = [];
  if (startup.application_name !== undefined) out.push(["application_name", startup.application_name]);
  if (startup.options !== undefined) out.push(...parseOptions(startup.options));
  return out;
}
