// What the integration tests need from outside the repository, answered as a
// skip reason (a string naming what is missing and how to get it) or
// undefined. A missing prerequisite must be a visible skip, never a crash in a
// before() hook nor a silently dropped suite: test/run.js counts and lists
// every skip, and fails the run under CI, where a skip is an install bug.
//
// HBAGATE_TEST_PRETEND_MISSING=slapd,corpora (comma-separated names from
// PRETENDABLE) makes the checks report those prerequisites as missing, so the
// skip path can be exercised without uninstalling anything. An unknown name
// throws: a typo would otherwise test nothing while looking like it did.
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";

export const PRETENDABLE = ["slapd", "ldap-utils", "openssl", "corpora", "postgres-debian", "postgres-embedded"] as const;
export type Prerequisite = (typeof PRETENDABLE)[number];

const VARIABLE = "HBAGATE_TEST_PRETEND_MISSING";

function pretended(): ReadonlySet<string> {
  const names = (process.env[VARIABLE] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = names.filter((n) => !(PRETENDABLE as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new Error(`${VARIABLE}: unknown ${unknown.join(", ")} (known: ${PRETENDABLE.join(", ")})`);
  }
  return new Set(names);
}

export function pretendMissing(name: Prerequisite): boolean {
  return pretended().has(name);
}

/** The paths that do not exist (all of them while `name` is pretended missing). */
export function missingPaths(name: Prerequisite, paths: readonly string[]): string[] {
  return pretendMissing(name) ? [...paths] : paths.filter((p) => !existsSync(p));
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? "/usr/bin:/bin").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The commands not found on PATH (all of them while `name` is pretended missing). */
export function missingCommands(name: Prerequisite, commands: readonly string[]): string[] {
  return pretendMissing(name) ? [...commands] : commands.filter((c) => !onPath(c));
}

/** One reason from several checks, or undefined when nothing is missing. */
export function reasons(...found: readonly (string | undefined)[]): string | undefined {
  const all = found.filter((r): r is string => r !== undefined);
  return all.length === 0 ? undefined : all.join("; ");
}

/** The shared test corpora, kept beside the checkout (../shared/corpora), not in the repository. */
export function corpusMissing(paths: readonly string[], howToGet: string): string | undefined {
  const gone = missingPaths("corpora", paths);
  if (gone.length === 0) return undefined;
  return `test data missing: ${gone.join(", ")} (the shared corpora live beside the checkout, in ../shared/corpora, not in the repository; ${howToGet})`;
}
