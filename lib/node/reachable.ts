// Readiness probe: can a connection to the upstream be opened?
import { connect } from "node:net";

/** `host` may be a Unix socket directory, as libpq takes it (the embedded upstream). */
export function reachable(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = host.startsWith("/") ? connect({ path: `${host}/.s.PGSQL.${port}`, timeout: timeoutMs }) : connect({ host, port, timeout: timeoutMs });
    const done = (state: string) => {
      socket.destroy();
      resolve(state);
    };
    socket.once("connect", () => done("ok"));
    socket.once("timeout", () => done("unreachable: timed out"));
    socket.once("error", (err: NodeJS.ErrnoException) => done(`unreachable: ${err.code ?? err.message}`));
  });
}

/**
 * `reachable` for a probe anyone may call: one TCP connection per `ms` at
 * most, however many probes arrive (concurrent ones share it).
 */
export function reachableAtMostEvery(host: string, port: number, ms = 1000): () => Promise<string> {
  let last: { at: number; answer: Promise<string> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= ms) last = { at: now, answer: reachable(host, port) };
    return last.answer;
  };
}
