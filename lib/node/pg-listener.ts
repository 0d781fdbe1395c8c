// PostgreSQL's own port, for psql and every driver: the same sessions as the
// WebSocket endpoint, on a plain TCP socket. An SSLRequest is answered here:
// with TLS when the server has a certificate (HBAGATE_TLS_*), which makes the
// session "encrypted" for hostssl lines, and with 'N' otherwise.
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, TLSSocket, type Server as TlsServer } from "node:tls";
import type { PeerInfo } from "../connection/caller.ts";
import { SSL_REQUEST, GSSENC_REQUEST } from "../wire/protocol.ts";
import type { ClientChannel, Sessions } from "../wire/session.ts";
import { tlsPeerCertificate } from "./client-certs/tls-peer.ts";
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

/** Below this many unwritten bytes a paused server side is read again. */
const LOW_WATER = 256 * 1024;

function channelOf(socket: Socket, drained: () => void): ClientChannel {
  socket.on("drain", () => {
    if (socket.writableLength < LOW_WATER) drained();
  });
  return {
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
  };
}

/** The code of an 8-byte SSLRequest/GSSENCRequest at the start of `bytes`, if that is what it is. */
function encryptionRequest(bytes: Buffer): number | undefined {
  if (bytes.length < 8 || bytes.readInt32BE(0) !== 8) return undefined;
  const code = bytes.readInt32BE(4);
  return code === SSL_REQUEST || code === GSSENC_REQUEST ? code : undefined;
}

export async function startPgListener(sessions: () => Sessions | undefined, s: PgListenSettings): Promise<{ readonly address: string; close(): Promise<void> }> {
  // The TLS side of an accepted SSLRequest: a tls.Server that never listens and is handed the
  // socket, so that OpenSSL's verdict on a client certificate is read as the HTTPS listener reads
  // it. One per client trust in force (a reload replaces it for new connections).
  let made: { trust: ClientTrust | undefined; server: TlsServer } | undefined;
  const tlsServerNow = (): TlsServer | undefined => {
    if (!s.tls) return undefined;
    const trust = s.tls.clientTrust();
    if (!made || made.trust !== trust) {
      const server = createTlsServer({ cert: s.tls.cert, key: s.tls.key, ...(trust ? { ...trust.tls, requestCert: true, rejectUnauthorized: false } : {}) });
      server.on("secureConnection", (secure: TLSSocket) => {
        // A connection's certificate is read once: renegotiation could change it under the session.
        secure.disableRenegotiation();
        begin(secure, true, undefined);
      });
      server.on("tlsClientError", (_err, socket) => socket.destroy());
      made = { trust, server };
    }
    return made.server;
  };
  const begin = (socket: Socket, encrypted: boolean, first: Buffer | undefined) => {
    const registry = sessions();
    const address = socket.remoteAddress;
    // The client's certificate, as the HTTPS listener reads it (verified by OpenSSL; a caller without one is let in).
    const certificate = socket instanceof TLSSocket ? tlsPeerCertificate(socket) : undefined;
    const peer: PeerInfo = { transport: "host", ...(address ? { address } : {}), encrypted, ...(certificate ? { certificate } : {}) };
    if (!registry) return socket.destroy();
    let session: ReturnType<Sessions["accept"]>;
    const channel = channelOf(socket, () => session?.drained());
    session = registry.accept(peer, channel);
    socket.on("data", (chunk: Buffer) => session?.data(chunk));
    socket.on("close", () => session?.closed());
    if (first && first.length > 0) session?.data(first);
  };
  const server: Server = createServer((socket) => {
    socket.on("error", () => {});
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    // Before the startup packet, a client may ask for encryption (GSS first, then SSL, as libpq does).
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      for (;;) {
        if (head.length < 8 && head.length < 4) return;
        const code = encryptionRequest(head);
        if (code === undefined) {
          if (head.length < 8 && head.readInt32BE(0) === 8) return; // an encryption request still arriving
          socket.off("data", onData);
          return begin(socket, false, head);
        }
        head = head.subarray(8);
        const tls = code === SSL_REQUEST && head.length === 0 ? tlsServerNow() : undefined;
        if (tls) {
          socket.off("data", onData);
          socket.write("S");
          tls.emit("connection", socket);
          return;
        }
        // No TLS here (or bytes sent after the request, before the answer: not a client to upgrade).
        socket.write("N");
        if (head.length === 0) return;
      }
    };
    socket.on("data", onData);
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
