// What every harness needs: an unprivileged account to run servers as (they
// refuse root), and a free loopback port.
import { execFileSync } from "node:child_process";
import { createServer } from "node:net";

export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/** Under root, the first of `candidates` that exists; otherwise undefined (run as ourselves). */
export function unprivilegedUser(candidates: readonly string[], what: string): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of candidates) {
    try {
      const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim());
      return { uid, gid };
    } catch {
      // try the next candidate
    }
  }
  throw new Error(`running as root but found no unprivileged user for ${what}`);
}

/** A port on `host` that was free a moment ago (nothing listens on it now). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}
