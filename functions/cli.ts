// Command-line entry point: argv in, exit code out. The commands live in lib/cli.
import { relative, sep } from "node:path";
import { hbaCommand, HBA_USAGE } from "../lib/cli/hba-command.ts";
import { absolutePath, fileSource } from "../lib/config/file-source.ts";
import { systemHost } from "../lib/connection/system-host.ts";

const USAGE = `usage: hbagate <command>

commands:
  start                      run the gateway (see README)
  hba check|match ...        validate pg_hba.conf, or show which line a connection matches

${HBA_USAGE}`;

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep) ? rel : path;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "hba") {
    const r = await hbaCommand(rest, { source: fileSource, absolute: absolutePath, display, host: systemHost });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    return r.code;
  }
  if (command === "start") {
    const { start } = await import("./node.ts");
    return start(rest);
  }
  // Asked for, the usage is the answer (stdout, exit 0); otherwise it explains an error.
  if (command === "--help" || command === "-h") {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stderr.write(command === undefined ? USAGE : `hbagate: unknown command "${command}"\n${USAGE}`);
  return 2;
}
