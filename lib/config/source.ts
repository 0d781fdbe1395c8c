// Where configuration text comes from. The hba and ident parsers never touch a
// file system themselves: `include`, `include_dir` and `@file` go through a
// ConfigSource, so the same parser reads local files (Node), an in-memory set
// (tests, secrets) or anything else that can answer these two questions.

/** A failed read, with the text PostgreSQL's %m would print (strerror). */
export class SourceError extends Error {
  constructor(
    message: string,
    /** ENOENT matters: include_if_exists skips missing files. */
    readonly missing: boolean,
  ) {
    super(message);
    this.name = "SourceError";
  }
}

export interface ConfigSource {
  /** The file's text; throws SourceError when it cannot be read. */
  readFile(path: string): string;
  /** Names (not paths) of the entries in a directory; throws SourceError. */
  listDir(path: string): readonly { readonly name: string; readonly isFile: boolean }[];
}

/** A source over a fixed set of files, keyed by absolute path. */
export function memorySource(files: Readonly<Record<string, string>>): ConfigSource {
  return {
    readFile(path) {
      const text = files[path];
      if (text === undefined) throw new SourceError("No such file or directory", true);
      return text;
    },
    listDir(path) {
      const prefix = path.endsWith("/") ? path : path + "/";
      const names = new Map<string, boolean>();
      for (const key of Object.keys(files)) {
        if (!key.startsWith(prefix)) continue;
        const rest = key.slice(prefix.length);
        const slash = rest.indexOf("/");
        names.set(slash < 0 ? rest : rest.slice(0, slash), slash < 0);
      }
      if (names.size === 0) throw new SourceError("No such file or directory", true);
      return [...names].map(([name, isFile]) => ({ name, isFile }));
    },
  };
}

/** PostgreSQL's AbsoluteConfigLocation: relative paths are relative to the including file's directory. */
export function resolveIncluded(path: string, includingFile: string): string {
  if (path.startsWith("/")) return path;
  const slash = includingFile.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : includingFile.slice(0, slash);
  return normalize(dir === "/" ? `/${path}` : `${dir}/${path}`);
}

function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else if (part !== ".." || !absolute) out.push(part);
  }
  const joined = out.join("/");
  return absolute ? `/${joined}` : joined || ".";
}
