// PostgreSQL's own port, for psql and every driver: the same sessions as the
// WebSocket endpoint, on a plain TCP socket. The session answers an
// SSLRequest: with TLS when the server has a certificate (HBAGATE_TLS_*; the
// channel's startTls), which makes it "encrypted" for hostssl lines, and with
// 'N' otherwise.
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, TLSSocket, type Server as TlsServer } from "node:tls";
import type { PeerInfo } from "../connection/caller.ts";
import type { ClientChannel, ClientSession, Sessions } from "../wire/session.ts";
import { judgeAgainst, tlsPeerCertificate } from "./client-certs/tls-peer.ts";
import type { ClientTrust } from "./client-certs/trust.ts";

export interface PgListenSettings {
  readonly host: string;
  readonly port: number;
  readonly tls:
    | {
        readonly cert: Buffer;
        readonly key: Buffer;
        /** Client certificates asked for and verified against these (HBAGATE_TLS_CLIENT_CA_FILE and CRL), as in force now. */
        readonly clientTrust: () => ClientTrust | undefined;
      }
    | undefined;
}

/** The peer as a socket shows it: its address, TLS, and the client certificate OpenSSL verified. */
function peerOf(socket: Socket): PeerInfo {
  const address = socket.remoteAddress;
  const tls = socket instanceof TLSSocket ? socket : undefined;
  // As the HTTPS listener reads it (verified by OpenSSL; a caller without one is let in).
  const certificate = tls ? tlsPeerCertificate(tls) : undefined;
  return { transport: "host", ...(address ? { address } : {}), encrypted: tls !== undefined, ...(certificate ? { certificate } : {}) };
}

export async function startPgListener(sessions: () => Sessions | undefined, s: PgListenSettings): Promise<{ readonly address: string; close(): Promise<void> }> {
  // The TLS side of an accepted SSLRequest: a tls.Server that never listens and is handed the
  // socket, so that OpenSSL's verdict on a client certificate is read as the HTTPS listener reads
  // it. One per client trust in force (a reload replaces it for new connections); its connections
  // are told apart by their peer's address and port, unique among live connections.
  let made: { trust: ClientTrust | undefined; server: TlsServer } | undefined;
  const waiting = new Map<string, { resolve(secure: TLSSocket): void; reject(err: Error): void }>();
  const keyOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
  const handshake = (raw: Socket): Promise<TLSSocket> => {
    const trust = s.tls!.clientTrust();
    if (!made || made.trust !== trust) {
      const server = createTlsServer({ cert: s.tls!.cert, key: s.tls!.key, ...(trust ? { ...trust.tls, requestCert: true, rejectUnauthorized: false } : {}) });
      server.on("secureConnection", (secure: TLSSocket) => {
        // A connection's certificate is read once: renegotiation could change it under the session.
        secure.disableRenegotiation();
        const waiter = waiting.get(keyOf(secure));
        waiting.delete(keyOf(secure));
        if (waiter) waiter.resolve(secure);
        else secure.destroy();
      });
      server.on("tlsClientError", (err, secure) => {
        const waiter = waiting.get(keyOf(secure));
        waiting.delete(keyOf(secure));
        secure.destroy();
        waiter?.reject(err);
      });
      made = { trust, server };
    }
    const tls = made.server;
    return new Promise((resolve, reject) => {
      const key = keyOf(raw);
      waiting.set(key, { resolve, reject });
      raw.once("close", () => {
        if (waiting.delete(key)) reject(new Error("the client went away during the TLS handshake"));
      });
      tls.emit("connection", raw);
    });
  };

  const server: Server = createServer((raw) => {
    raw.on("error", () => {});
    raw.setNoDelay(true);
    raw.setKeepAlive(true, 30_000);
    const registry = sessions();
    if (!registry) return raw.destroy();
    // The session starts with the connection: its limits and authentication time bound cover
    // the encryption negotiation too. Its channel follows the socket into TLS.
    let socket: Socket = raw;
    let session: ClientSession | undefined;
    const onData = (chunk: Buffer) => session?.data(chunk);
    const onDrain = () => session?.drained();
    const attach = (next: Socket) => {
      socket = next;
      next.on("data", onData);
      next.on("drain", onDrain);
      next.once("close", () => session?.closed());
    };
    const channel: ClientChannel = {
      send: (bytes) => void (socket.writable && socket.write(bytes)),
      get buffered() {
        return socket.writableLength;
      },
      close: () => {
        socket.end();
        // A client that does not close its side in time is cut.
        setTimeout(() => socket.destroy(), 5000).unref();
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      ...(s.tls
        ? {
            startTls: async () => {
              raw.off("data", onData);
              raw.off("drain", onDrain);
              const secure = await handshake(raw);
              secure.on("error", () => {});
              judgeAgainst(secure, () => s.tls?.clientTrust());
              attach(secure);
              return peerOf(secure);
            },
          }
        : {}),
    };
    attach(raw);
    session = registry.accept(peerOf(raw), channel);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(s.port, s.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as { address: string; port: number; family: string };
  return {
    address: `${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
