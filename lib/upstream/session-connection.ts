// One upstream connection for one client session (a WebSocket or TCP
// session): opened, TLS-negotiated and logged in by the gateway itself, then
// handed over as a byte stream whose every message is the client's business.
// Never pooled, never reused: it closes with the session.
import type { Socket } from "node:net";
import { md5 } from "@noble/hashes/legacy.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { cstringAt, MAX_STARTUP_BYTES, MessageReader, MessageWriter, PROTOCOL_3_0, serverError, CANCEL_REQUEST } from "../wire/protocol.ts";
import { ScramClient } from "../wire/scram-client.ts";
import { connectUpstream } from "./upstream-socket.ts";
import type { UpstreamSettings } from "./upstream-settings.ts";
import { connectTimeout, within } from "./within.ts";
import { fromDriverError } from "./errors.ts";

/** An upstream connection, logged in and ready for the client's first message. */
export interface ServerStream {
  /** ParameterStatus (and NoticeResponse) messages the server sent at login, for the client. */
  readonly greeting: readonly Uint8Array[];
  /** The server's own cancel key (never shown to the client). */
  readonly key: { readonly pid: number; readonly secret: number };
  write(bytes: Uint8Array): boolean;
  onData(fn: (chunk: Uint8Array) => void): void;
  onDrain(fn: () => void): void;
  /** Once, when the connection is gone (an error, the server closing it, or `end`). */
  onClose(fn: (err: Error | undefined) => void): void;
  pause(): void;
  resume(): void;
  /** Terminate, then close. */
  end(): void;
  /** Close at once, saying nothing (the server, or the way to it, is not to be waited for). */
  destroy(): void;
}

const utf8 = new TextEncoder();
/** Bytes a server's login messages may take before ReadyForQuery: far more than any sends. */
const MAX_LOGIN_MESSAGE = 1 << 20;

export interface LoginRequest {
  readonly database: string;
  readonly user: string;
  readonly password: string | undefined;
  /** Startup parameters beside user and database (application_name, options, GUCs). */
  readonly parameters: readonly (readonly [string, string])[];
}

function startupPacket(r: LoginRequest): Uint8Array {
  const w = new MessageWriter().int32(PROTOCOL_3_0).cstring("user").cstring(r.user).cstring("database").cstring(r.database);
  for (const [name, value] of r.parameters) w.cstring(name).cstring(value);
  return w.bytes(new Uint8Array(1)).finish();
}

const password = (text: string) => new MessageWriter().cstring(text).finish("p");

/** The server asked for a password the gateway does not have (a passthrough login without one). */
const noPassword = () => gatewayError(SQLSTATE.invalidPassword, "the server asked for a password and the session has none", { severity: "FATAL" });

/**
 * Connects and logs in as `request.user`. Resolves once the server is ready
 * for a query; rejects with the server's ErrorResponse (FATAL) or a
 * connection error (08001), the socket closed.
 */
export async function openServerStream(settings: UpstreamSettings, request: LoginRequest): Promise<ServerStream> {
  // Refused here, before anything is sent: PostgreSQL would close the connection on such a packet
  // without a word, which reads as a database that is down (08001).
  const packet = startupPacket(request);
  if (packet.length > MAX_STARTUP_BYTES) {
    throw gatewayError(
      SQLSTATE.programLimitExceeded,
      `the session's startup parameters take ${packet.length} bytes with the gateway's own (a bearer token's claims), more than the ${MAX_STARTUP_BYTES} bytes PostgreSQL accepts in a startup packet`,
      { severity: "FATAL", hint: "A token with fewer claims (groups, metadata) fits; an HTTP request, whose claims are set per request, has no such bound." },
    );
  }
  const socket = await connectUpstream(settings).catch((err: unknown) => {
    throw err instanceof GatewayError ? err : fromDriverError(err);
  });
  try {
    return await within(login(socket, request, packet), settings.connectTimeout * 1000, () => {
      throw fromDriverError(connectTimeout());
    });
  } catch (err) {
    socket.destroy();
    throw err instanceof GatewayError ? err : fromDriverError(err);
  }
}

async function login(socket: Socket, request: LoginRequest, packet: Uint8Array): Promise<ServerStream> {
  const reader = new MessageReader(MAX_LOGIN_MESSAGE);
  const greeting: Uint8Array[] = [];
  let key = { pid: 0, secret: 0 };
  let scram: ScramClient | undefined;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const onData = (chunk: Buffer) => {
    reader.push(chunk);
    wake?.();
  };
  const onEnd = (err?: Error) => {
    failure ??= err ?? new Error("the server closed the connection during login");
    wake?.();
  };
  const onClose = () => onEnd();
  socket.on("data", onData);
  socket.on("error", onEnd);
  socket.on("close", onClose);
  const next = async () => {
    for (;;) {
      const m = reader.next();
      if (m) return m;
      if (failure) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  };
  socket.write(packet);
  try {
    for (;;) {
      const m = await next();
      const view = new DataView(m.body.buffer, m.body.byteOffset, m.body.byteLength);
      switch (String.fromCharCode(m.type)) {
        case "E":
          throw Object.assign(serverError(m.body), {});
        case "R": {
          const code = view.getInt32(0);
          if (code === 0) break;
          if (request.password === undefined) throw noPassword();
          if (code === 3) socket.write(password(request.password));
          else if (code === 5) {
            const inner = bytesToHex(md5(utf8.encode(request.password + request.user)));
            const salted = bytesToHex(md5(new Uint8Array([...utf8.encode(inner), ...m.body.subarray(4, 8)])));
            socket.write(password(`md5${salted}`));
          } else if (code === 10) {
            const mechanisms: string[] = [];
            for (let at = 4; ; ) {
              const s = cstringAt(m.body, at);
              if (!s || s.text === "") break;
              mechanisms.push(s.text);
              at = s.next;
            }
            if (!mechanisms.includes("SCRAM-SHA-256")) throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "the database is unavailable", { detail: `the server offers no SASL mechanism the gateway speaks (${mechanisms.join(", ")})` });
            scram = new ScramClient(request.password);
            const first = scram.first();
            socket.write(new MessageWriter().cstring("SCRAM-SHA-256").int32(first.length).bytes(first).finish("p"));
          } else if (code === 11 && scram) {
            socket.write(new MessageWriter().bytes(await scram.final(new TextDecoder().decode(m.body.subarray(4)))).finish("p"));
          } else if (code === 12 && scram) {
            scram.check(new TextDecoder().decode(m.body.subarray(4)));
          } else {
            throw gatewayError(SQLSTATE.sqlclientUnableToEstablishSqlconnection, "the database is unavailable", { detail: `the server asked for an authentication exchange the gateway does not speak (${code})` });
          }
          break;
        }
        case "S":
        case "N":
          greeting.push(m.bytes);
          break;
        case "K":
          key = { pid: view.getInt32(0), secret: view.getInt32(4) };
          break;
        case "v":
          // NegotiateProtocolVersion: the gateway asked for 3.0 and nothing optional; nothing to do.
          break;
        case "Z":
          return stream(socket, reader, greeting, key);
        default:
          throw gatewayError(SQLSTATE.protocolViolation, `unexpected message type ${m.type} from the server during login`, { severity: "FATAL" });
      }
    }
  } finally {
    socket.off("data", onData);
    socket.off("error", onEnd);
    socket.off("close", onClose);
  }
}

function stream(socket: Socket, reader: MessageReader, greeting: Uint8Array[], key: { pid: number; secret: number }): ServerStream {
  // The server has said nothing after ReadyForQuery (it waits for the client); anything read is handed on.
  const early = reader.drain();
  let closed = false;
  const closers: ((err: Error | undefined) => void)[] = [];
  let lastError: Error | undefined;
  socket.on("error", (err) => (lastError = err));
  socket.once("close", () => {
    closed = true;
    for (const fn of closers) fn(lastError);
  });
  // TCP keepalive: a peer that vanished without a FIN is found, not waited on forever.
  socket.setKeepAlive?.(true, 30_000);
  return {
    greeting,
    key,
    write: (bytes) => !closed && socket.write(bytes),
    onData(fn) {
      for (const chunk of early) fn(chunk);
      socket.on("data", fn);
    },
    onDrain: (fn) => socket.on("drain", fn),
    onClose(fn) {
      if (closed) fn(lastError);
      else closers.push(fn);
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    end() {
      if (closed) return;
      // Terminate: the server ends the session (an open transaction rolls back).
      socket.end(new Uint8Array([0x58, 0, 0, 0, 4]));
      // A server that does not close its side in time is cut.
      setTimeout(() => socket.destroy(), 5000).unref();
    },
    destroy: () => socket.destroy(),
  };
}

/**
 * Sends a CancelRequest for a server key on a connection of its own; settles
 * once the server has closed it, which it does after signalling the backend
 * (the cancel has landed). Written without closing our side: a proxy on the
 * way may close a half-closed connection before it has passed the request on.
 */
export async function cancelOnServer(settings: UpstreamSettings, key: { pid: number; secret: number }): Promise<void> {
  const socket = await connectUpstream(settings);
  const packet = new MessageWriter().int32(CANCEL_REQUEST).int32(key.pid).int32(key.secret).finish();
  await new Promise<void>((resolve) => {
    socket.once("close", () => resolve());
    socket.once("error", () => resolve());
    socket.write(packet);
    setTimeout(() => {
      socket.destroy();
      resolve();
    }, 5000).unref();
  });
}
