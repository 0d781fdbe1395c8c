// Servers that fail as a network can: one that accepts connections and never
// answers (a black hole), and a port on which nothing listens.
import { createServer, type Socket } from "node:net";
import { freePort } from "./process.ts";

const HOST = "127.0.0.1";

export interface Blackhole {
  readonly port: number;
  /** How many connections were accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}


/** A loopback port on which nothing listens (a connection is refused), as far as can be known. (Nothing is to bind it: freePort is what is wanted.) */
export async function freeClosedPort(): Promise<number> {
  return freePort(HOST);
}

/** A TCP server on 127.0.0.1 that accepts connections and never writes a byte. */
export async function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const srv = createServer((sock) => {
    accepted++;
    sockets.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => sockets.delete(sock));
    // Read and discard, so the peer's writes never block.
    sock.resume();
  });
  const port = await new Promise<number>((resolve, reject) => {
    srv.on("error", reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      if (typeof addr === "object" && addr) resolve(addr.port);
      else reject(new Error("no port"));
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port,
    get accepted() {
      return accepted;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      });
      return closed;
    },
  };
}

