// Sockets to the upstream that the gateway opens itself and hands to
// postgres.js (its `socket` option): for a verification login, whose
// authentication messages are read alongside the driver (login-exchange.ts),
// and for a pool's connections, each of which is one server session and
// never silently another.
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { UpstreamSettings } from "./upstream-settings.ts";
import { connectTimeout, within } from "./within.ts";
import { ANSWER_TOO_LARGE, SESSION_ENDED } from "./errors.ts";


/** A connected socket, as libpq would open it (a host that is a directory is a Unix socket directory), or the connect error. */
export async function openSocket(settings: Pick<UpstreamSettings, "host" | "port" | "connectTimeout">): Promise<Socket> {
  const { host, port } = settings;
  const socket = host.startsWith("/") ? netConnect({ path: `${host}/.s.PGSQL.${port}` }) : netConnect({ host, port });
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve();
    });
    socket.once("error", reject);
  });
  try {
    await within(connected, settings.connectTimeout * 1000, () => {
      throw connectTimeout();
    });
    // postgres.js names the TLS server after the socket's host, as for the sockets it opens itself.
    (socket as Socket & { host?: string }).host = host;
    return socket;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** SSLRequest, then TLS with the same verification postgres.js is configured with. */
async function secure(raw: Socket, host: string, ssl: NonNullable<UpstreamSettings["ssl"]>): Promise<Socket> {
  raw.write(SSL_REQUEST);
  const answer = await new Promise<number | undefined>((resolve, reject) => {
    raw.once("data", (d: Buffer) => {
      raw.off("error", reject);
      resolve(d[0]);
    });
    raw.once("error", reject);
  });
  if (answer !== 0x53 /* S */) {
    raw.destroy();
    throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "the database is unavailable", { detail: "the server does not support SSL" });
  }
  const options: ConnectionOptions =
    // `host` is what the certificate must name (an IP address against its IP SANs); without it Node checks "localhost".
    ssl === "require" ? { socket: raw, rejectUnauthorized: false } : { socket: raw, ...ssl, host, ...(isIP(host) ? {} : { servername: host }) };
  return new Promise((resolve, reject) => {
    const tls = tlsConnect(options, () => {
      tls.off("error", reject);
      resolve(tls);
    });
    tls.once("error", reject);
  });
}

/**
 * A connected socket with TLS negotiated as configured (SSLRequest, then the
 * verification postgres.js is configured with), each step within the connect
 * timeout; nothing is left open when it fails.
 */
export async function connectUpstream(settings: Pick<UpstreamSettings, "host" | "port" | "ssl" | "connectTimeout">): Promise<Socket> {
  const raw = await openSocket(settings);
  if (!settings.ssl) return raw;
  try {
    return await within(secure(raw, settings.host, settings.ssl), settings.connectTimeout * 1000, () => {
      throw connectTimeout();
    });
  } catch (err) {
    raw.destroy();
    throw err;
  }
}

/**
 * A socket factory for one pool connection (a postgres.js instance of max 1):
 * its first socket is the session. Later calls while that socket is open are
 * CancelRequests (postgres.js sends them on connections of their own); a call
 * once it has closed is a reconnect, refused with SESSION_ENDED.
 */
export function oneSession(settings: Pick<UpstreamSettings, "host" | "port" | "connectTimeout">, answers?: AnswerBound): () => Promise<Socket> {
  let state: "new" | "open" | "ended" = "new";
  return async () => {
    if (state === "ended") throw Object.assign(new Error("the server session ended"), { code: SESSION_ENDED });
    if (state === "open") return openSocket(settings);
    state = "open";
    try {
      const socket = await openSocket(settings);
      socket.once("close", () => {
        state = "ended";
      });
      answers?.attach(socket);
      return socket;
    } catch (err) {
      state = "ended";
      throw err;
    }
  };
}

/**
 * The bound on one connection's answers: bytes that arrive after each write (a
 * request, with the session's reset behind it), less the notices among them
 * (postgres.js hands each one to `notice` as it reads it, and the gateway drops
 * them: a RAISE NOTICE loop makes no response larger). Raw bytes (TLS records
 * too): no parsing on the way, one addition per chunk. Past `max` the
 * connection is cut.
 */
export class AnswerBound {
  private received = 0;
  constructor(private readonly max: number) {}

  attach(socket: Socket): void {
    const write = socket.write;
    // Each write starts a new answer.
    const bound = this;
    socket.write = function (this: Socket, ...args: Parameters<Socket["write"]>) {
      bound.received = 0;
      return write.apply(this, args);
    } as Socket["write"];
    socket.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.received > this.max) socket.destroy(Object.assign(new Error("the answer is larger than any response may be"), { code: ANSWER_TOO_LARGE }));
    });
  }

  /** A NoticeResponse postgres.js read: its bytes on the wire (type, length, each field's code, text and NUL, the final NUL) do not count. */
  notice(fields: Readonly<Record<string, unknown>>): void {
    let bytes = 6;
    for (const v of Object.values(fields)) if (typeof v === "string") bytes += 2 + Buffer.byteLength(v);
    this.received -= bytes;
  }
}
