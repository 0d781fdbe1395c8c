// What every harness needs: an unprivileged account to run servers as (they
// refuse root), and a free loopback port.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
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

/**
 * How many of this machine's TCP connections from one of `localPorts` to
 * `remotePort` are still open on the client's side (ESTABLISHED, or
 * CLOSE_WAIT: the server has closed but the client has not noticed yet).
 * From /proc/net/tcp and tcp6, so it sees what a process has really done with
 * its sockets, not what it says it did.
 */
export function clientConnectionsOpen(remotePort: number, localPorts: Iterable<number>): number {
  const wanted = new Set(localPorts);
  let n = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const [, local, remote, state] = line.trim().split(/\s+/);
      if (!local || !remote || !state) continue;
      const localPort = parseInt(local.split(":").pop()!, 16);
      const rPort = parseInt(remote.split(":").pop()!, 16);
      // 01 ESTABLISHED, 08 CLOSE_WAIT
      if (rPort === remotePort && wanted.has(localPort) && (state === "01" || state === "08")) n++;
    }
  }
  return n;
}
