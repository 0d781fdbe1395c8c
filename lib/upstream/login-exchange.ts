// What a verification login proved: which authentication exchange the server
// asked for before it let the login in. "The connection opened" proves nothing
// when the upstream trusts the gateway's address; a password proves what the
// exchange that checked it proves (see lib/auth/login-proof.ts).
//
// postgres.js does the exchange but does not say which one it did, so the
// socket it reads from is opened here and the server's Authentication
// messages are read alongside it. TLS is therefore negotiated here too (the
// driver's own TLS would hide the messages).
import type { Socket } from "node:net";
import { MessageReader } from "../wire/protocol.ts";
import { connectUpstream } from "./upstream-socket.ts";
import type { UpstreamSettings } from "./upstream-settings.ts";

/** The password exchange the server asked for: none at all (trust, and the like), or one of the three. */
export type Exchange = "none" | "password" | "md5" | "scram-sha-256" | "other";

/** AuthenticationRequest codes (PostgreSQL protocol, "Message Formats"). */
const REQUEST: Readonly<Record<number, Exchange>> = { 3: "password", 5: "md5", 10: "scram-sha-256" };

/** Authentication requests are small; a longer message is not one, and ends the watch. */
const MAX_AUTH_MESSAGE_BYTES = 64 * 1024;

/**
 * Reads the server's side of a login, message by message, and remembers the
 * first authentication request. It stops reading at AuthenticationOk or at
 * the first message that is not part of authentication (an ErrorResponse),
 * and at anything that cannot be a message (the exchange then proves no more
 * than it had: "none" proves nothing).
 */
export class ExchangeWatcher {
  exchange: Exchange = "none";
  private readonly reader = new MessageReader(MAX_AUTH_MESSAGE_BYTES);
  private done = false;

  readonly feed = (chunk: Buffer): void => {
    if (this.done) return;
    this.reader.push(chunk);
    try {
      for (;;) {
        const type = this.reader.nextType();
        if (type === undefined) return;
        if (type !== 0x52 /* R */) return this.stop();
        const message = this.reader.next();
        if (!message) return;
        const body = message.body;
        const code = body.length >= 4 ? new DataView(body.buffer, body.byteOffset, 4).getInt32(0) : -1;
        // AuthenticationOk: authentication is over.
        if (code === 0) return this.stop();
        // 11 and 12 continue the SASL exchange that 10 began.
        if (this.exchange === "none") this.exchange = REQUEST[code] ?? "other";
      }
    } catch {
      this.stop();
    }
  };

  private stop(): void {
    this.done = true;
    this.reader.drain();
  }
}

/**
 * A socket factory for postgres.js (its `socket` option) whose connection
 * feeds `watcher`; the driver must be given `ssl: false`, TLS being done here.
 */
export function watchedSocket(settings: Pick<UpstreamSettings, "host" | "port" | "ssl" | "connectTimeout">, watcher: ExchangeWatcher): () => Promise<Socket> {
  return async () => {
    const socket = await connectUpstream(settings);
    // Added before the driver's own listener, so both see every chunk.
    socket.on("data", watcher.feed);
    return socket;
  };
}

/**
 * A verification login's outcome: let in, with the exchange the server asked
 * for (and, after a cleartext one, who PostgreSQL 16+ says authenticated
 * whom), or refused, with the server's reason for the gateway's log only.
 */
export type LoginOutcome =
  | {
      readonly ok: true;
      readonly exchange: Exchange;
      /** `system_user` (`method:identity`, null without one); undefined when not asked or unknown (before PostgreSQL 16). */
      readonly systemUser?: string | null | undefined;
    }
  | { readonly ok: false; readonly code: string; readonly reason: string };
