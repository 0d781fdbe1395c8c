// Sockets to the upstream that the gateway opens itself: for its own protocol
// client (pool connections and sessions, session-connection.ts), and for
// postgres.js (its `socket` option) in a verification login, whose
// authentication messages are read alongside the driver (login-exchange.ts).
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { UpstreamSettings } from "./upstream-settings.ts";
import { connectTimeout, within } from "./within.ts";

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
