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

/** TCP states in /proc/net/tcp, by their hex code. */
const TCP_STATES: Readonly<Record<string, string>> = {
  "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
  "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
};

/**
 * The states of this machine's TCP sockets from one of `localPorts` to
 * `remotePort`: the client's ends of those connections. From /proc/net/tcp and
 * tcp6, so it shows what a process has really done with its sockets, not what
 * it says it did. CLOSE_WAIT: the server has closed, the client has not yet.
 */
export function clientSocketStates(remotePort: number, localPorts: Iterable<number>): string[] {
  const wanted = new Set(localPorts);
  const out: string[] = [];
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
      if (rPort === remotePort && wanted.has(localPort)) out.push(TCP_STATES[state] ?? state);
    }
  }
  return out;
}

/** How many of those connections the client still holds open (ESTABLISHED, or CLOSE_WAIT: not yet noticed closed). */
export function clientConnectionsOpen(remotePort: number, localPorts: Iterable<number>): number {
  return clientSocketStates(remotePort, localPorts).filter((s) => s === "ESTABLISHED" || s === "CLOSE_WAIT").length;
}
