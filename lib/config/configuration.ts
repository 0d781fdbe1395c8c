// The reloadable part of the configuration (rules, ident maps, verifier file,
// role credentials), each read from a file or a Secrets Manager reference,
// built whole and swapped whole: at start an invalid set stops the process,
// on reload it leaves the running set in force, as PostgreSQL does.
import { parseVerifierFile, type VerifierFile } from "../auth/verifier-file.ts";
import { memorySource, type ConfigSource } from "./source.ts";
import { formatError, loadHba } from "../hba/load.ts";
import type { HbaRule } from "../hba/rule.ts";
import type { LogEvent } from "../log.ts";
import { loadIdent, type IdentFile } from "../ident/ident.ts";
import { isSecretReference, parseSecretReference, selectValue } from "../secrets/reference.ts";

/** A role's upstream password: a literal, or a reference to an RDS-shaped secret read at each login. */
export type RoleCredential = { readonly kind: "literal"; readonly password: string } | { readonly kind: "secret"; readonly reference: string };

export interface Configuration {
  readonly rules: readonly HbaRule[];
  readonly ident: IdentFile | undefined;
  readonly verifierFile: VerifierFile | undefined;
  readonly roleCredentials: ReadonlyMap<string, RoleCredential>;
}

/** Each one a file path or a `secretsmanager:` reference. */
export interface ConfigurationLocations {
  readonly hba: string;
  readonly ident: string | undefined;
  readonly verifier: string | undefined;
  readonly roleCredentials: string | undefined;
}

/** Reads a secret's text (the secret store). */
export type SecretReader = (secretId: string) => Promise<string>;

interface Loaded {
  /** Name used in messages: the path, or the reference as written. */
  readonly name: string;
  readonly source: ConfigSource;
  readonly text: string;
}

/** The text at a location, and a source to parse it from (secrets have no neighbouring files to include). */
async function read(location: string, files: ConfigSource, secrets: SecretReader | undefined): Promise<Loaded> {
  if (!isSecretReference(location)) return { name: location, source: files, text: files.readFile(location) };
  const ref = parseSecretReference(location);
  if (!secrets) throw new Error(`${location}: secret references need the secrets service (HBAGATE_SECRETS_REGION or AWS_REGION)`);
  const text = selectValue(ref, await secrets(ref.secretId));
  return { name: ref.text, source: memorySource({ [ref.text]: text }), text };
}

/** {"role": "password" | "secretsmanager:…", …}; messages never repeat a value. */
function parseRoleCredentials(name: string, text: string): ReadonlyMap<string, RoleCredential> | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return `${name}: not valid JSON`;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return `${name}: expected a JSON object mapping roles to passwords or secret references`;
  const map = new Map<string, RoleCredential>();
  for (const [role, value] of Object.entries(json)) {
    if (typeof value !== "string" || value === "") return `${name}: the credential for role "${role}" must be a non-empty string`;
    if (isSecretReference(value)) {
      try {
        parseSecretReference(value);
      } catch (err) {
        return `${name}: role "${role}": ${(err as Error).message}`;
      }
      map.set(role, { kind: "secret", reference: value });
    } else map.set(role, { kind: "literal", password: value });
  }
  return map;
}

/** An error's message and, for a secret that could not be read, why (the service's error, a binary secret). */
function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
}

/** Every problem is logged with file (or secret) and line; undefined unless all of it is valid. */
export async function loadConfiguration(
  locations: ConfigurationLocations,
  files: ConfigSource,
  secrets: SecretReader | undefined,
  log: (e: LogEvent) => void,
): Promise<Configuration | undefined> {
  const problems: string[] = [];
  const attempt = async <T>(location: string | undefined, build: (loaded: Loaded) => T | string): Promise<T | undefined> => {
    if (location === undefined) return undefined;
    try {
      const result = build(await read(location, files, secrets));
      if (typeof result === "string") {
        problems.push(result);
        return undefined;
      }
      return result;
    } catch (err) {
      problems.push(`${location}: ${reason(err)}`);
      return undefined;
    }
  };

  const hba = await attempt(locations.hba, ({ name, source }) => {
    const file = loadHba(name, source);
    for (const e of file.errors) problems.push(formatError(e));
    return file;
  });
  const ident = await attempt(locations.ident, ({ name, source }) => {
    const file = loadIdent(name, source);
    for (const e of file.errors) problems.push(`${e.file}:${e.line}: ${e.message}`);
    return file;
  });
  const verifierFile = await attempt(locations.verifier, ({ name, text }) => {
    const file = parseVerifierFile(name, text);
    for (const e of file.errors) problems.push(`${e.file}:${e.line}: ${e.message}`);
    return file;
  });
  const roleCredentials = await attempt(locations.roleCredentials, ({ name, text }) => parseRoleCredentials(name, text));

  for (const p of problems) log({ level: "error", msg: "invalid configuration", error: p });
  if (problems.length > 0 || !hba) return undefined;
  return Object.freeze({ rules: hba.rules, ident, verifierFile, roleCredentials: roleCredentials ?? new Map() });
}

export function usesMembership(rule: HbaRule): boolean {
  return rule.users.some((u) => u.kind === "member") || rule.databases.some((d) => d.kind === "samerole");
}

/** The secrets a set of locations reads, so a new version of one can trigger a reload. */
export function secretIdsOf(locations: ConfigurationLocations): Set<string> {
  const ids = new Set<string>();
  for (const l of Object.values(locations)) if (typeof l === "string" && isSecretReference(l)) ids.add(parseSecretReference(l).secretId);
  return ids;
}

const PASSWORD_METHODS: ReadonlySet<string> = new Set(["password", "md5", "scram-sha-256"]);

/** A line whose method checks a password PostgreSQL stores. */
export function isPasswordRule(rule: HbaRule): boolean {
  return PASSWORD_METHODS.has(rule.method.name);
}

/**
 * Why these rules cannot work on the embedded upstream, or undefined: a
 * password line needs a verifier file there, PGlite having no passwords to
 * check (a login would prove nothing and refuse everyone).
 */
export function embeddedCannotVerify(rules: readonly HbaRule[], hasVerifierFile: boolean): string | undefined {
  if (hasVerifierFile) return undefined;
  const line = rules.find(isPasswordRule);
  if (!line) return undefined;
  return `${line.file}:${line.line}: "${line.method.name}" needs HBAGATE_VERIFIER_FILE with the embedded PGlite upstream, which checks no passwords (or set HBAGATE_UPSTREAM_HOST to a PostgreSQL server that does)`;
}
