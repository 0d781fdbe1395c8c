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
import type { ClientTrust } from "./client-certs/trust.ts";
import { judgeAgainst, tlsPeerCertificate } from "./client-certs/tls-peer.ts";

export interface ListenSettings {
  readonly host: string;
  readonly port: number;
  readonly unixSocket: string | undefined;
  readonly tls:
    | {
        readonly certFile: string;
        readonly keyFile: string;
        /** Client certificates are asked for and verified against this (HBAGATE_TLS_CLIENT_CA_FILE, its CRL). */
        readonly clientTrust?: ClientTrust | undefined;
      }
    | undefined;
  /** WebSocket upgrades for interactive sessions, with the largest message a session may send; absent: none. */
  readonly webSockets?: { readonly maxMessageBytes: number };
}

export interface Listening {
  readonly urls: readonly string[];
  /** Verify client certificates of new connections against this trust from now on (a reload). */
  setClientTrust(trust: ClientTrust): void;
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
  const tls = socket instanceof TLSSocket && socket.encrypted ? socket : undefined;
  const certificate = tls ? tlsPeerCertificate(tls) : undefined;
  return { transport: "host", ...(address ? { address } : {}), encrypted: tls !== undefined, ...(certificate ? { certificate } : {}) };
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
  const identity = s.tls ? { cert: readFileSync(s.tls.certFile), key: readFileSync(s.tls.keyFile) } : undefined;
  const clientTrust = s.tls?.clientTrust;
  let trustInForce = clientTrust;
  const tcp = s.tls
    ? createAdaptorServer({
        fetch,
        createServer: createHttpsServer,
        serverOptions: {
          ...identity,
          // Asked for, verified by OpenSSL against the CA (and CRL), but a caller without one — or with
          // one that fails — still completes the handshake: the rules decide (a line without clientcert=
          // needs none), and a certificate that failed is refused with its reason, as a request.
          ...(clientTrust ? { requestCert: true, rejectUnauthorized: false, ...clientTrust.tls } : {}),
        },
        ...websocket(),
      })
    : createAdaptorServer({ fetch, ...websocket() });
  if (clientTrust) {
    // A connection's certificate is read once: client-initiated renegotiation could swap it under
    // requests already attributed to it (and is a denial-of-service lever besides).
    // (An attempt is an error on the socket, which then closes.)
    (tcp as Server).on("secureConnection", (socket: TLSSocket) => {
      socket.disableRenegotiation();
      // A reload's CA and CRL judge the certificates of connections already open too.
      judgeAgainst(socket, () => trustInForce);
    });
  }
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
    setClientTrust(trust) {
      if (!clientTrust) return;
      trustInForce = trust;
      // Key and certificate as started with; only the CA and CRL are reloaded. New connections only.
      (tcp as unknown as { setSecureContext(o: object): void }).setSecureContext({ ...identity, ...trust.tls });
    },
    close: async () => {
      await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    },
  };
}
