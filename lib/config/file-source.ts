// ConfigSource over the local file system (Node and Lambda; not the edge build).
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { SourceError, type ConfigSource } from "./source.ts";

const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ELOOP: "Too many levels of symbolic links",
  EMFILE: "Too many open files",
};

function wrap(err: unknown): SourceError {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  return new SourceError(STRERROR[code] ?? (err instanceof Error ? err.message : String(err)), code === "ENOENT");
}

export const fileSource: ConfigSource = {
  readFile(path) {
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      // PostgreSQL fopen()s a directory without complaint and reads nothing
      // from it, so an included directory is an empty file there, and here.
      if ((err as NodeJS.ErrnoException).code === "EISDIR") return "";
      throw wrap(err);
    }
  },
  listDir(path) {
    try {
      return readdirSync(path, { withFileTypes: true }).map((d) => ({ name: d.name, isFile: d.isFile() }));
    } catch (err) {
      throw wrap(err);
    }
  },
};

/** Absolute form of a path given on the command line or in settings. */
export function absolutePath(path: string): string {
  return resolve(path);
}
