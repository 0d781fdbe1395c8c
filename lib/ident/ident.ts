// pg_ident.conf user name maps (PostgreSQL 18 documentation, "User Name Maps";
// hba.c: parse_ident_line, check_ident_usermap, check_usermap).
import type { ConfigSource } from "../config/source.ts";
import { userMatches, type MatchEnvironment } from "../hba/match.ts";
import { compilePattern, isPattern } from "../hba/pattern.ts";
import type { NameMatcher } from "../hba/rule.ts";
import { isKeyword, tokenizeFile, type Token, type TokenizedLine } from "../hba/tokenize.ts";

export interface IdentMapping {
  readonly file: string;
  readonly line: number;
  readonly mapNumber: number;
  readonly map: string;
  /** The system-user field: a literal name or a regex (whose first group may feed `\1`). */
  readonly systemUser: { readonly text: string; readonly regex: RegExp | undefined };
  /** The database-user field, as the text and as a role matcher. */
  readonly databaseUser: { readonly text: string; readonly quoted: boolean; readonly matcher: NameMatcher };
}

export interface IdentError {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface IdentFile {
  readonly path: string;
  readonly mappings: readonly IdentMapping[];
  readonly errors: readonly IdentError[];
  readonly entries: readonly ({ readonly mapping: IdentMapping } | { readonly error: IdentError })[];
}

function roleMatcher(t: Token): NameMatcher | string {
  if (!t.quoted && t.text.startsWith("+")) return { kind: "member", text: t.text, role: t.text.slice(1) };
  if (isKeyword(t, "all")) return { kind: "all", text: t.text };
  if (isPattern(t.text)) {
    const c = compilePattern(t.text.slice(1));
    return "error" in c ? c.error : { kind: "regex", text: t.text, regex: c.regex };
  }
  return { kind: "name", text: t.text };
}

function parseLine(tl: TokenizedLine, mapNumber: number): IdentMapping | string {
  const f = tl.fields;
  const one = (i: number): Token | string => {
    const field = f[i];
    if (!field) return "missing entry at end of line";
    if (field.length > 1) return "multiple values in ident field";
    return field[0]!;
  };
  const map = one(0);
  if (typeof map === "string") return map;
  const sys = one(1);
  if (typeof sys === "string") return sys;
  const pg = one(2);
  if (typeof pg === "string") return pg;
  let regex: RegExp | undefined;
  if (isPattern(sys.text)) {
    const c = compilePattern(sys.text.slice(1));
    if ("error" in c) return c.error;
    regex = c.regex;
  }
  const matcher = roleMatcher(pg);
  if (typeof matcher === "string") return matcher;
  return {
    file: tl.file,
    line: tl.line,
    mapNumber,
    map: map.text,
    systemUser: { text: sys.text, regex },
    databaseUser: { text: pg.text, quoted: pg.quoted, matcher },
  };
}

export function loadIdent(path: string, source: ConfigSource): IdentFile {
  const mappings: IdentMapping[] = [];
  const errors: IdentError[] = [];
  const entries: IdentFile["entries"][number][] = [];
  for (const tl of tokenizeFile(path, source)) {
    const parsed = tl.error ?? parseLine(tl, mappings.length + 1);
    if (typeof parsed === "string") {
      const error = { file: tl.file, line: tl.line, message: parsed };
      errors.push(error);
      entries.push({ error });
    } else {
      mappings.push(parsed);
      entries.push({ mapping: parsed });
    }
  }
  return Object.freeze({ path, mappings: Object.freeze(mappings), errors: Object.freeze(errors), entries: Object.freeze(entries) });
}

/**
 * One mapping line against (system user, database user). "stop" is
 * PostgreSQL's error case (\1 without a captured group): the search ends, denied.
 */
async function lineVerdict(
  m: IdentMapping,
  systemUser: string,
  databaseUser: string,
  env: Pick<MatchEnvironment, "isMember">,
): Promise<"allow" | "skip" | "stop"> {
  const db = m.databaseUser;
  const verdict = async (ok: boolean | Promise<boolean>) => ((await ok) ? "allow" : "skip");
  if (!m.systemUser.regex) {
    if (m.systemUser.text !== systemUser) return "skip";
    return verdict(userMatches([db.matcher], databaseUser, env));
  }
  const found = m.systemUser.regex.exec(systemUser);
  if (!found) return "skip";
  const at = db.text.indexOf("\\1");
  // \1 is substituted only into a plain name, and the result is compared literally.
  if (db.matcher.kind === "name" && at >= 0) {
    const group = found[1];
    if (group === undefined) return "stop";
    return verdict(db.text.slice(0, at) + group + db.text.slice(at + 2) === databaseUser);
  }
  return verdict(userMatches([db.matcher], databaseUser, env));
}

/**
 * check_usermap: may the externally authenticated `systemUser` connect as
 * `databaseUser`? Without a map the two names must be equal. The first line of
 * the map that matches the system user and accepts the database user wins.
 */
export async function identAllows(
  ident: IdentFile,
  map: string | undefined,
  systemUser: string,
  databaseUser: string,
  env: Pick<MatchEnvironment, "isMember">,
): Promise<boolean> {
  if (map === undefined || map === "") return systemUser === databaseUser;
  for (const m of ident.mappings) {
    if (m.map !== map) continue;
    const v = await lineVerdict(m, systemUser, databaseUser, env);
    if (v !== "skip") return v === "allow";
  }
  return false;
}
