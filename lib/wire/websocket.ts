// Sessions over a WebSocket (what Neon's Pool and Client open at /v2): one
// binary stream of PostgreSQL's protocol per socket, frames split or
// coalesced however the client likes. Hono's upgrade helper is the runtime's
// (the Node server's here); what a socket can do beyond send and close
// (backpressure) is the platform's channel.
import type { Context, Handler } from "hono";
import type { UpgradeWebSocket, WSContext } from "hono/ws";
import type { PeerInfo } from "../connection/caller.ts";
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { ClientChannel, ClientSession, Sessions } from "./session.ts";

export interface WebSocketPort {
  readonly upgrade: UpgradeWebSocket;
  /** The session's side of an open socket; `drained` once what was queued has gone out. */
  channel(ws: WSContext, drained: () => void): ClientChannel;
}

export function sessionHandler(port: WebSocketPort, sessions: Sessions, peerOf: (c: Context) => PeerInfo): Handler {
  return port.upgrade((c) => {
    // Judged at the upgrade, as for a request: the socket's peer, or the client a trusted proxy names.
    const peer = peerOf(c);
    let session: ClientSession | undefined;
    return {
      onOpen(_event, ws) {
        const channel = port.channel(ws, () => session?.drained());
        session = sessions.accept(peer, channel);
      },
      onMessage(event, ws) {
        const data = event.data;
        if (typeof data === "string" || !(data instanceof ArrayBuffer)) {
          // The protocol is bytes: a text frame is not a message of it.
          session?.fail(gatewayError(SQLSTATE.protocolViolation, "expected binary WebSocket frames carrying PostgreSQL's protocol"));
          ws.close(1003, "binary frames only");
          return;
        }
        session?.data(new Uint8Array(data));
      },
      onClose() {
        session?.closed();
      },
      onError() {
        session?.closed();
      },
    };
  }) as Handler;
}
