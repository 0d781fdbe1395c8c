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
import { connectUpstream } from "./upstream-socket.ts";
import type { UpstreamSettings } from "./upstream-settings.ts";

/** The password exchange the server asked for: none at all (trust, and the like), or one of the three. */
export type Exchange = "none" | "password" | "md5" | "scram-sha-256" | "other";

/** AuthenticationRequest codes (PostgreSQL protocol, "Message Formats"). */
const REQUEST: Readonly<Record<number, Exchange>> = { 3: "password", 5: "md5", 10: "scram-sha-256" };

/**
 * Reads the server's side of a login, message by message, and remembers the
 * first authentication request. It stops reading at AuthenticationOk or at
 * the first message that is not part of authentication (an ErrorResponse).
 */
export class ExchangeWatcher {
  exchange: Exchange = "none";
  private pending: Buffer = Buffer.alloc(0);
  private done = false;

  readonly feed = (chunk: Buffer): void => {
    if (this.done) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const type = this.pending[0];
      const length = this.pending.readUInt32BE(1);
      if (type !== 0x52 /* R */) {
        this.done = true;
        this.pending = Buffer.alloc(0);
        return;
      }
      if (this.pending.length < 1 + length) return;
      const code = length >= 8 ? this.pending.readUInt32BE(5) : -1;
      this.pending = this.pending.subarray(1 + length);
      if (code === 0) {
        // AuthenticationOk: authentication is over.
        this.done = true;
        this.pending = Buffer.alloc(0);
        return;
      }
      // 11 and 12 continue the SASL exchange that 10 began.
      if (this.exchange === "none") this.exchange = REQUEST[code] ?? "other";
    }
  };
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
