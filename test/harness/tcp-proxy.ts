// A TCP proxy in front of PostgreSQL that reads the protocol's messages in
// both directions and cuts the gateway's side of a connection at a chosen
// step: before a message is passed on, or right after. The server's side is
// left to finish what it received (as when a network between the two fails),
// then closed. It can also hold CancelRequests back (to land them on a later
// statement of their backend, as a slow network would), turn the open
// connections into a black hole (nothing passes, nothing closes), refuse new
// connections, or take new ones in and never answer them.
import { createServer, connect, type Server, type Socket } from "node:net";

export type Direction = "toServer" | "toClient";

export interface CutRule {
  readonly direction: Direction;
  /** The message (type letter, body) at which to cut. */
  readonly when: (type: string, body: Buffer) => boolean;
  /** Pass the matching message on before cutting (true), or cut before it (false). */
  readonly forward: boolean;
}

/** A CancelRequest the proxy held back, and what let it go. */
export interface HeldCancel {
  /** The backend it targets (from its packet). */
  readonly pid: number;
  readonly heldAt: number;
  releasedAt?: number;
  /** "statement": a message matching `until` was passed on to its backend; "timeout": `atMostMs` passed first. */
  releasedBy?: "statement" | "timeout";
}

export interface CancelHold {
  /**
   * A message on the targeted backend's connection (toServer) that releases the cancel
   * `landAfterMs` after it is passed on: the backend must be running the statement when the
   * cancel lands (one that reaches it while it waits for the statement is dropped).
   */
  readonly until: (type: string, body: Buffer) => boolean;
  /** Default 100. */
  readonly landAfterMs?: number;
  /** Released after this long anyway. */
  readonly atMostMs: number;
}

export interface PgProxy {
  readonly port: number;
  /**
   * From now on, hold every CancelRequest (the 16-byte packet, code 80877102, on
   * a new connection) until `hold.until` matches a message passed on to the
   * backend it targets, or `hold.atMostMs` passes. The list fills as cancels come.
   */
  holdCancels(hold: CancelHold): HeldCancel[];
  /**
   * Connections that carried a startup (not a cancel), with their backend pid once the server sent it,
   * and their state: "cut" while the server's side is left to finish what it received, "closed" once
   * the server's side is closed too.
   */
  readonly sessions: readonly Session[];
  /** The client's port of every connection accepted so far (see clientConnectionsOpen in process.ts). */
  readonly clientPorts: readonly number[];
  /** From now on, pass nothing on any open connection in either direction, and close nothing (a network black hole). New connections pass. */
  blackHole(): void;
  /** Connections accepted so far (swallowed ones included). */
  readonly accepted: number;
  /** Stop listening: a new connection is refused, the open ones carry on. */
  refuseNew(): void;
  /** From now on, accept a new connection and never answer or close it (nothing goes upstream); the open ones carry on. */
  swallowNew(): void;
  /** Cut once, at the first message matching the rule on any connection. */
  arm(rule: CutRule): Promise<void>;
  /** Close every connection now (both sides), as a network failure between requests would. */
  cutAll(): void;
  close(): Promise<void>;
}

export interface Session {
  readonly pid: number | undefined;
  readonly state: "open" | "cut" | "closed";
}

/** Splits a byte stream into protocol messages; the client's first one (startup) has no type letter. */
class Messages {
  private buf = Buffer.alloc(0);
  constructor(private untyped: boolean) {}
  push(chunk: Buffer): { type: string; body: Buffer; raw: Buffer }[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: { type: string; body: Buffer; raw: Buffer }[] = [];
    for (;;) {
      if (this.untyped) {
        if (this.buf.length < 4) break;
        const len = this.buf.readUInt32BE(0);
        if (this.buf.length < len) break;
        out.push({ type: "", body: this.buf.subarray(4, len), raw: this.buf.subarray(0, len) });
        this.buf = this.buf.subarray(len);
        this.untyped = false;
        continue;
      }
      if (this.buf.length < 5) break;
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 1 + len) break;
      out.push({ type: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, 1 + len), raw: this.buf.subarray(0, 1 + len) });
      this.buf = this.buf.subarray(1 + len);
    }
    return out;
  }
}

export async function startPgProxy(upstreamPort: number, upstreamHost = "127.0.0.1"): Promise<PgProxy> {
  const pairs = new Set<{ client: Socket; server: Socket }>();
  let armed: { rule: CutRule; fired: () => void } | undefined;
  let holding: { hold: CancelHold; held: HeldCancel[] } | undefined;
  /** Held cancels waiting for a statement on their backend: released by the connection whose pid matches. */
  const waitingCancels = new Set<{ held: HeldCancel; until: CancelHold["until"]; landAfterMs: number; release: (by: "statement" | "timeout") => void }>();
  const sessions: { pid: number | undefined; state: Session["state"] }[] = [];
  const clientPorts: number[] = [];
  const silenced = new Set<Socket>();
  const swallowed = new Set<Socket>();
  let accepted = 0;
  let swallowing = false;
  let listening = true;

  const server: Server = createServer((client) => {
    accepted++;
    if (client.remotePort !== undefined) clientPorts.push(client.remotePort);
    if (swallowing) {
      swallowed.add(client);
      client.on("error", () => {});
      return;
    }
    const upstream = connect({ host: upstreamHost, port: upstreamPort });
    const pair = { client, server: upstream };
    pairs.add(pair);
    const fromClient = new Messages(true);
    const fromServer = new Messages(false);
    let cut = false;
    let first = true;
    let session: (typeof sessions)[number] | undefined;
    const cutNow = () => {
      cut = true;
      if (session) session.state = "cut";
      client.destroy();
      // The server finishes what it has, then sees the connection end.
      setTimeout(() => upstream.destroy(), 500).unref();
    };
    const relay = (direction: Direction, messages: ReturnType<Messages["push"]>, to: Socket) => {
      for (const m of messages) {
        if (cut) return;
        if (direction === "toServer" && first) {
          first = false;
          // A CancelRequest: length 16, code 80877102, pid, secret key.
          if (m.raw.length === 16 && m.raw.readUInt32BE(4) === 80877102 && holding) {
            const held: HeldCancel = { pid: m.raw.readUInt32BE(8), heldAt: Date.now() };
            holding.held.push(held);
            const hold = holding.hold;
            const entry = {
              held,
              until: hold.until,
              landAfterMs: hold.landAfterMs ?? 100,
              release: (by: "statement" | "timeout") => {
                if (!waitingCancels.delete(entry)) return;
                clearTimeout(timer);
                held.releasedAt = Date.now();
                held.releasedBy = by;
                to.write(m.raw);
              },
            };
            const timer = setTimeout(() => entry.release("timeout"), hold.atMostMs);
            timer.unref();
            waitingCancels.add(entry);
            continue;
          }
          if (!(m.raw.length === 16 && m.raw.readUInt32BE(4) === 80877102)) {
            session = { pid: undefined, state: "open" };
            sessions.push(session);
          }
        }
        if (direction === "toClient" && m.type === "K" && session) session.pid = m.body.readUInt32BE(0);
        const rule = armed?.rule;
        if (rule && rule.direction === direction && rule.when(m.type, m.body)) {
          const fired = armed!.fired;
          armed = undefined;
          if (rule.forward) to.write(m.raw);
          cutNow();
          fired();
          return;
        }
        to.write(m.raw);
        if (direction === "toServer" && session?.pid !== undefined) {
          for (const w of waitingCancels) {
            if (w.held.pid === session.pid && w.until(m.type, m.body)) setTimeout(() => w.release("statement"), w.landAfterMs).unref();
          }
        }
      }
    };
    client.on("data", (d: Buffer) => void (silenced.has(client) || relay("toServer", fromClient.push(d), upstream)));
    upstream.on("data", (d: Buffer) => void (silenced.has(client) || relay("toClient", fromServer.push(d), client)));
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", () => {
      if (!cut) end();
    });
    upstream.on("close", () => {
      if (session) session.state = "closed";
      end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");

  return {
    port: address.port,
    holdCancels(hold) {
      const held: HeldCancel[] = [];
      holding = { hold, held };
      return held;
    },
    sessions,
    clientPorts,
    blackHole() {
      for (const p of pairs) silenced.add(p.client);
    },
    get accepted() {
      return accepted;
    },
    refuseNew() {
      if (listening) server.close();
      listening = false;
    },
    swallowNew() {
      swallowing = true;
    },
    arm(rule) {
      return new Promise<void>((fired) => {
        armed = { rule, fired };
      });
    },
    cutAll() {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      pairs.clear();
    },
    async close() {
      armed = undefined;
      holding = undefined;
      waitingCancels.clear();
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      for (const s of swallowed) s.destroy();
      if (!listening) return;
      listening = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Whether a Parse (or simple Query) message carries `text` in its statement. */
export function statementContains(text: string): (type: string, body: Buffer) => boolean {
  return (type, body) => (type === "P" || type === "Q") && body.toString("utf8").includes(text);
}

/** The Sync that ends the extended-protocol request carrying `text`: the whole statement has been passed on. */
export function syncAfter(text: string): (type: string, body: Buffer) => boolean {
  const carries = statementContains(text);
  let seen = false;
  return (type, body) => {
    if (carries(type, body)) seen = true;
    return seen && type === "S";
  };
}

/**
 * The Execute that runs the statement carrying `text` (postgres.js may parse and describe it in a
 * round trip of its own first): once it is passed on, the statement is running on the server.
 */
export function executeOf(text: string): (type: string, body: Buffer) => boolean {
  const carries = statementContains(text);
  let seen = false;
  return (type, body) => {
    if (carries(type, body)) seen = true;
    return seen && type === "E";
  };
}
