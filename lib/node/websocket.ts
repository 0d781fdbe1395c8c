// The Node server's WebSockets: `ws` under @hono/node-server's upgrade, with
// its send buffer and pause/resume as the session's backpressure.
import { upgradeWebSocket } from "@hono/node-server";
import type { UpgradeWebSocket, WSContext } from "hono/ws";
import { WebSocketServer, type WebSocket } from "ws";
import type { WebSocketPort } from "../wire/websocket.ts";

export const nodeWebSockets: WebSocketPort = {
  upgrade: upgradeWebSocket as unknown as UpgradeWebSocket,
  channel(ws: WSContext, drained: () => void) {
    const raw = ws.raw as WebSocket;
    return {
      send(bytes: Uint8Array) {
        // Each frame written out is a chance for the session to read its server again.
        if (raw.readyState === raw.OPEN) raw.send(bytes, { binary: true }, drained);
      },
      get buffered() {
        return raw.bufferedAmount;
      },
      close() {
        if (raw.readyState === raw.CLOSED) return;
        raw.close(1000);
        // A client that does not complete the closing handshake is cut.
        setTimeout(() => raw.terminate(), 5000).unref();
      },
      pause: () => raw.pause(),
      resume: () => raw.resume(),
    };
  },
};

/**
 * The server side of the upgrade (noServer: the HTTP listener hands it the
 * upgrade). A frame may carry several messages, so it may be up to twice the
 * largest message; past that ws closes the socket with 1009.
 */
export function webSocketServer(maxMessageBytes: number): WebSocketServer {
  return new WebSocketServer({ noServer: true, maxPayload: 2 * maxMessageBytes + 1024, perMessageDeflate: false });
}
