// `/regex` tokens (PostgreSQL 16+, database and user fields of pg_hba.conf and
// both user fields of pg_ident.conf). PostgreSQL compiles them as Advanced
// Regular Expressions, unanchored; quoting does not stop a leading slash from
// meaning a regex (verified against PostgreSQL 18). We compile them as
// JavaScript regular expressions after translating POSIX bracket classes, the
// one ARE feature common in such files that JavaScript lacks.

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alpha: "a-zA-Z",
  digit: "0-9",
  alnum: "a-zA-Z0-9",
  upper: "A-Z",
  lower: "a-z",
  space: " \\t\\n\\r\\f\\v",
  blank: " \\t",
  punct: "!-\\/:-@\\[-`{-~",
  xdigit: "0-9A-Fa-f",
  word: "a-zA-Z0-9_",
  cntrl: "\\x00-\\x1f\\x7f",
  print: "\\x20-\\x7e",
  graph: "\\x21-\\x7e",
};

function translate(source: string): string {
  return source.replace(/\[:([a-z]+):\]/g, (whole, name: string) => POSIX_CLASSES[name] ?? whole);
}

export type Compiled = { readonly regex: RegExp } | { readonly error: string };

/** Compile the text after the leading slash. */
export function compilePattern(pattern: string): Compiled {
  try {
    return { regex: new RegExp(translate(pattern)) };
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, "") : "invalid";
    return { error: `invalid regular expression "${pattern}": ${reason}` };
  }
}

export function isPattern(text: string): boolean {
  return text.startsWith("/");
}
