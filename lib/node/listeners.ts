// Where the Node server listens: TCP (plain HTTP or HTTPS) and, optionally, a
// Unix socket whose requests are hba `local` connections.
import { createAdaptorServer, type HttpBindings, type WebSocketServerLike } from "@hono/node-server";
import type { Context } from "hono";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { TLSSocket } from "node:tls";
import type { PeerInfo } from "../connection/caller.ts";
import { clientAddress, isLoopback } from "../connection/client-address.ts";
import { webSocketServer } from "./websocket.ts";

export interface ListenSettings {
  readonly host: string;
  readonly port: number;
  readonly unixSocket: string | undefined;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** WebSocket upgrades for interactive sessions, with the largest message a session may send; absent: none. */
  readonly webSockets?: { readonly maxMessageBytes: number };
}

export interface Listening {
  readonly urls: readonly string[];
  close(): Promise<void>;
}

/** Set by the Unix-socket listener only, so nothing else can claim to be local. */
const LOCAL = Symbol("hbagate.local");

/** The connection as Node saw it: the Unix-socket listener -> local; a TLS socket -> encrypted. */
export function nodePeer(c: Context): PeerInfo {
  const env = c.env as (HttpBindings & { [LOCAL]?: true }) | undefined;
  if (env?.[LOCAL]) return { transport: "local", encrypted: false };
  const socket = env?.incoming?.socket;
  // No address (a socket already gone): the caller cannot be identified, and is refused downstream.
  const address = socket?.remoteAddress;
  return { transport: "host", ...(address ? { address } : {}), encrypted: socket instanceof TLSSocket && socket.encrypted };
}

/** A listen address only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const a = clientAddress(host);
  if (!a) return host.toLowerCase() === "localhost";
  return isLoopback(a);
}

function listen(server: Server, target: { port: number; host: string } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if ("path" in target) server.listen(target.path, done);
    else server.listen(target.port, target.host, done);
  });
}

export async function startListeners(fetch: (req: Request, env: unknown) => Response | Promise<Response>, s: ListenSettings): Promise<Listening> {
  const servers: Server[] = [];
  const urls: string[] = [];
  // Each listener upgrades on its own server (ws binds its upgrade handler to one).
  const websocket = () => (s.webSockets ? { websocket: { server: webSocketServer(s.webSockets.maxMessageBytes) as unknown as WebSocketServerLike } } : {});
  const tcp = s.tls
    ? createAdaptorServer({
        fetch,
        createServer: createHttpsServer,
        serverOptions: { cert: readFileSync(s.tls.certFile), key: readFileSync(s.tls.keyFile) },
        ...websocket(),
      })
    : createAdaptorServer({ fetch, ...websocket() });
  await listen(tcp as Server, { port: s.port, host: s.host });
  servers.push(tcp as Server);
  const addr = tcp.address() as AddressInfo;
  urls.push(`${s.tls ? "https" : "http"}://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`);
  if (s.unixSocket) {
    // Marked on the runtime's own env object, not a copy: its WebSocket upgrade finds what it left there.
    const local = (req: Request, env: unknown) => fetch(req, Object.assign(env as object, { [LOCAL]: true }));
    const unix = createAdaptorServer({ fetch: local, ...websocket() }) as Server;
    await listen(unix, { path: s.unixSocket });
    servers.push(unix);
    urls.push(`unix:${s.unixSocket}`);
  }
  return {
    urls,
    close: async () => {
      await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    },
  };
}
