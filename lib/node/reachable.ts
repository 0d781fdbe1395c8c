// Readiness probe: can a TCP connection to the upstream be opened?
import { connect } from "node:net";

export function reachable(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (state: string) => {
      socket.destroy();
      resolve(state);
    };
    socket.once("connect", () => done("ok"));
    socket.once("timeout", () => done("unreachable: timed out"));
    socket.once("error", (err: NodeJS.ErrnoException) => done(`unreachable: ${err.code ?? err.message}`));
  });
}
