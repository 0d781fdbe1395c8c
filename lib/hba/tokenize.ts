// Tokenizing an authentication file exactly as PostgreSQL does (hba.c:
// next_token, next_field_expand, tokenize_auth_file), shared by pg_hba.conf and
// pg_ident.conf. Documentation: "The pg_hba.conf File" (20.1) and
// "User Name Maps" (20.2), PostgreSQL 18.
import { resolveIncluded, SourceError, type ConfigSource } from "../config/source.ts";

export interface Token {
  readonly text: string;
  /** Whether the token *started* with a double quote: PostgreSQL's notion of quoted. */
  readonly quoted: boolean;
}

export interface TokenizedLine {
  readonly file: string;
  /** First physical line of the logical line (continuations are folded in). */
  readonly line: number;
  readonly raw: string;
  readonly fields: readonly (readonly Token[])[];
  readonly error: string | null;
}

/** PostgreSQL's CONF_FILE_MAX_DEPTH. */
const MAX_DEPTH = 10;

// pg_isblank: only these three, so \v and \f are part of a token.
function isBlank(c: string): boolean {
  return c === " " || c === "\t" || c === "\r";
}

interface Cursor {
  s: string;
  i: number;
}

interface RawToken {
  readonly text: string;
  readonly quoted: boolean;
  readonly comma: boolean;
}

/** next_token: one token, up to an unquoted blank or comma; undefined at end of line or comment. */
function nextToken(cur: Cursor): RawToken | undefined {
  const { s } = cur;
  while (cur.i < s.length && (isBlank(s[cur.i]!) || s[cur.i] === ",")) cur.i++;
  let text = "";
  let inQuote = false;
  let wasQuote = false;
  let sawQuote = false;
  let initialQuote = false;
  let comma = false;
  while (cur.i < s.length) {
    const c = s[cur.i]!;
    if (isBlank(c) && !inQuote) break;
    if (c === "#" && !inQuote) {
      cur.i = s.length;
      break;
    }
    if (c === "," && !inQuote) {
      comma = true;
      cur.i++;
      break;
    }
    if (c !== '"' || wasQuote) text += c;
    // A literal double quote inside quotes is written as two.
    wasQuote = inQuote && c === '"' ? !wasQuote : false;
    if (c === '"') {
      inQuote = !inQuote;
      sawQuote = true;
      if (text.length === 0) initialQuote = true;
    }
    cur.i++;
  }
  return sawQuote || text.length > 0 ? { text, quoted: initialQuote, comma } : undefined;
}

interface Context {
  readonly source: ConfigSource;
}

/**
 * next_field_expand: the comma-separated tokens of one field. `@file` (unquoted)
 * is replaced by every token of that file, in every field, as PostgreSQL does.
 */
function nextField(cur: Cursor, file: string, depth: number, ctx: Context): { tokens: Token[]; error: string | null } {
  const tokens: Token[] = [];
  for (;;) {
    const t = nextToken(cur);
    if (!t) break;
    if (!t.quoted && t.text.startsWith("@") && t.text.length > 1) {
      const expanded = expandFile(t.text.slice(1), file, depth + 1, ctx);
      if (typeof expanded === "string") return { tokens, error: expanded };
      tokens.push(...expanded);
    } else {
      tokens.push({ text: t.text, quoted: t.quoted });
    }
    if (!t.comma) break;
  }
  return { tokens, error: null };
}

function openFile(path: string, depth: number, ctx: Context): { text: string } | { error: string; missing: boolean } {
  if (depth > MAX_DEPTH) {
    return { error: `could not open file "${path}": maximum nesting depth exceeded`, missing: false };
  }
  try {
    return { text: ctx.source.readFile(path) };
  } catch (err) {
    if (err instanceof SourceError) return { error: `could not open file "${path}": ${err.message}`, missing: err.missing };
    throw err;
  }
}

function expandFile(name: string, outer: string, depth: number, ctx: Context): Token[] | string {
  const path = resolveIncluded(name, outer);
  const opened = openFile(path, depth, ctx);
  if ("error" in opened) return opened.error;
  const out: Token[] = [];
  for (const line of tokenizeText(opened.text, path, depth, ctx)) {
    if (line.error) return line.error;
    for (const field of line.fields) out.push(...field);
  }
  return out;
}

/**
 * Physical lines as PostgreSQL's fgets-based reader sees them: text after a
 * NUL is lost up to and including its newline, so the next line is glued on
 * (and is not counted as a line of its own).
 */
function physicalLines(text: string): string[] {
  const raw = text.split("\n");
  // A final newline does not start another line.
  if (raw.length > 0 && raw[raw.length - 1] === "") raw.pop();
  const out: string[] = [];
  let carry: string | undefined;
  for (const part of raw) {
    const line = carry === undefined ? part : carry + part;
    const nul = line.indexOf("\0");
    if (nul >= 0) {
      carry = line.slice(0, nul);
      continue;
    }
    carry = undefined;
    out.push(line);
  }
  if (carry !== undefined) out.push(carry);
  return out;
}

/** Logical lines: trailing CR/LF stripped, a trailing backslash joins the next line. */
function* logicalLines(text: string): Generator<{ line: number; text: string }> {
  const physical = physicalLines(text);
  let n = 0;
  while (n < physical.length) {
    const first = n + 1;
    let buf = "";
    let lastBackslash = 0;
    for (;;) {
      const part = physical[n++];
      if (part === undefined) break;
      buf += part.replace(/[\r\n]+$/, "");
      if (buf.length > lastBackslash && buf.endsWith("\\")) {
        buf = buf.slice(0, -1);
        lastBackslash = buf.length;
        continue;
      }
      break;
    }
    yield { line: first, text: buf };
  }
}

function includeFile(
  name: string,
  outer: string,
  depth: number,
  missingOk: boolean,
  ctx: Context,
  out: TokenizedLine[],
): string | null {
  const path = resolveIncluded(name, outer);
  const opened = openFile(path, depth, ctx);
  if ("error" in opened) return opened.missing && missingOk ? null : opened.error;
  out.push(...tokenizeText(opened.text, path, depth, ctx));
  return null;
}

/** GetConfFilesInDir: regular files ending in .conf, not hidden, in strcmp order. */
function includeDir(name: string, outer: string, depth: number, ctx: Context, out: TokenizedLine[]): string | null {
  const dir = resolveIncluded(name, outer);
  let entries;
  try {
    entries = ctx.source.listDir(dir);
  } catch (err) {
    // PostgreSQL logs the reason but puts only this in the line's error.
    if (err instanceof SourceError) return `could not open directory "${dir}"`;
    throw err;
  }
  const files = entries
    .filter((e) => e.isFile && !e.name.startsWith(".") && e.name.endsWith(".conf"))
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const errors: string[] = [];
  for (const f of files) {
    const err = includeFile(`${dir}/${f}`, outer, depth + 1, false, ctx, out);
    if (err) errors.push(err);
  }
  return errors.length ? errors.join("\n") : null;
}

function tokenizeText(text: string, file: string, depth: number, ctx: Context): TokenizedLine[] {
  const out: TokenizedLine[] = [];
  for (const { line, text: raw } of logicalLines(text)) {
    const cur: Cursor = { s: raw, i: 0 };
    const fields: Token[][] = [];
    let error: string | null = null;
    while (cur.i < raw.length && error === null) {
      const f = nextField(cur, file, depth, ctx);
      error = f.error;
      if (f.tokens.length > 0) fields.push(f.tokens);
    }
    if (fields.length === 0 && error === null) continue;

    // Inclusion directives: exactly two fields, judged on the first token of each (quoted or not).
    if (error === null && fields.length === 2) {
      const directive = fields[0]![0]!.text;
      const target = fields[1]![0]!.text;
      if (directive === "include" || directive === "include_if_exists") {
        error = includeFile(target, file, depth + 1, directive === "include_if_exists", ctx, out);
        if (error === null) continue;
      } else if (directive === "include_dir") {
        error = includeDir(target, file, depth, ctx, out);
        if (error === null) continue;
      }
    }
    out.push({ file, line, raw, fields, error });
  }
  return out;
}

/** Tokenize a top-level authentication file (pg_hba.conf or pg_ident.conf). */
export function tokenizeFile(path: string, source: ConfigSource): TokenizedLine[] {
  const ctx: Context = { source };
  const opened = openFile(path, 0, ctx);
  if ("error" in opened) return [{ file: path, line: 0, raw: "", fields: [], error: opened.error }];
  return tokenizeText(opened.text, path, 0, ctx);
}

export function isKeyword(t: Token, keyword: string): boolean {
  return !t.quoted && t.text === keyword;
}
