// Interactive sessions for the tests: a Node gateway with an hba file of the
// test's own in front of a throwaway cluster, Neon's client pointed at its
// WebSocket endpoint, and a raw protocol client for what no driver sends
// (garbage, truncated and oversized messages, cancel requests).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { neonConfig } from "@neondatabase/serverless";
import WebSocket from "ws";
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { MessageReader, MessageWriter, parseErrorFields, PROTOCOL_3_0, type Message } from "../../lib/wire/protocol.ts";
import type { PgErrorFields } from "../../lib/errors.ts";
import { nodeSettings, startNodeGateway } from "./gateway.ts";
import { startCluster, type Cluster } from "./postgres.ts";

export interface SessionGateway {
  readonly gateway: RunningGateway;
  readonly logs: LogEvent[];
  /** host:port of the HTTP listener. */
  readonly authority: string;
  /** ws://host:port/v2 */
  readonly wsUrl: string;
  close(): Promise<void>;
}

/** The Node gateway on an ephemeral port with `hba` as its rules, in front of 127.0.0.1:`upstreamPort`. */
export async function startSessionGateway(hba: string, upstreamPort: number, env: Readonly<Record<string, string>> = {}): Promise<SessionGateway> {
  const dir = await mkdtemp(join(tmpdir(), "hbagate-sessions-"));
  await writeFile(join(dir, "pg_hba.conf"), hba);
  const logs: LogEvent[] = [];
  const gateway = await startNodeGateway(nodeSettings({ HBAGATE_HBA_FILE: join(dir, "pg_hba.conf"), ...env }, upstreamPort), logs);
  const authority = new URL(gateway.urls[0]!).host;
  return {
    gateway,
    logs,
    authority,
    wsUrl: `ws://${authority}/v2`,
    async close() {
      await gateway.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Neon's client, unmodified, pointed at the gateway's WebSocket (plain ws: the test listener has no TLS). */
export function pointNeonAt(gw: Pick<SessionGateway, "authority">, options: { pipelineConnect?: "password" | false } = {}): void {
  neonConfig.webSocketConstructor = WebSocket;
  neonConfig.useSecureWebSocket = false;
  neonConfig.wsProxy = () => `${gw.authority}/v2`;
  neonConfig.pipelineConnect = options.pipelineConnect ?? "password";
}

export const startupMessage = (params: Readonly<Record<string, string>>, version = PROTOCOL_3_0) => {
  const w = new MessageWriter().int32(version);
  for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v);
  return w.bytes(new Uint8Array(1)).finish();
};

export const passwordMessage = (password: string) => new MessageWriter().cstring(password).finish("p");
export const queryMessage = (sql: string) => new MessageWriter().cstring(sql).finish("Q");

/** A protocol client on a bare WebSocket: what it sends is the test's, what it receives is kept as messages. */
export class RawSession {
  readonly ws: WebSocket;
  private readonly reader = new MessageReader(1 << 30);
  private readonly received: Message[] = [];
  private waiters: (() => void)[] = [];
  closeCode: number | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(url: string, headers: Record<string, string> = {}, tls: { ca?: Buffer | string; cert?: string; key?: string } = {}) {
    this.ws = new WebSocket(url, { headers, ...tls });
    this.ws.binaryType = "nodebuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      this.ws.once("error", reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code) => {
        this.closeCode = code;
        this.wake();
        resolve(code);
      });
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data: Buffer) => {
      this.reader.push(new Uint8Array(data));
      for (let m = this.reader.next(); m; m = this.reader.next()) this.received.push(m);
      this.wake();
    });
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** Every message received so far. */
  get messages(): readonly Message[] {
    return this.received;
  }

  /** Waits for the first message of `type` (a character) not yet taken; undefined if the socket closed first. */
  async next(type: string, timeoutMs = 10_000): Promise<Message | undefined> {
    const code = type.charCodeAt(0);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex((m) => m.type === code);
      if (i >= 0) return this.received.splice(i, 1)[0];
      if (this.closeCode !== undefined) return undefined;
      if (Date.now() > deadline) throw new Error(`no ${type} message within ${timeoutMs} ms (have ${this.received.map((m) => String.fromCharCode(m.type)).join("")})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next ErrorResponse's fields, undefined if none came before the close. */
  async error(timeoutMs?: number): Promise<PgErrorFields | undefined> {
    const m = await this.next("E", timeoutMs);
    return m && parseErrorFields(m.body);
  }

  /** Startup, password if asked, up to ReadyForQuery; returns the key the gateway handed out. */
  async login(params: Readonly<Record<string, string>>, password?: string): Promise<{ pid: number; secret: number }> {
    await this.opened;
    this.send(startupMessage(params));
    for (;;) {
      const m = this.received.shift() ?? (await this.waitAny());
      if (!m) throw new Error("closed during login");
      const t = String.fromCharCode(m.type);
      if (t === "E") throw Object.assign(new Error(parseErrorFields(m.body).message), parseErrorFields(m.body));
      if (t === "R" && new DataView(m.body.buffer, m.body.byteOffset).getInt32(0) === 3) this.send(passwordMessage(password ?? ""));
      if (t === "K") {
        const v = new DataView(m.body.buffer, m.body.byteOffset);
        const key = { pid: v.getInt32(0), secret: v.getInt32(4) };
        await this.next("Z");
        return key;
      }
    }
  }

  private async waitAny(): Promise<Message | undefined> {
    while (this.received.length === 0) {
      if (this.closeCode !== undefined) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.received.shift();
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A throwaway cluster with a role `app` that its own rules and the gateway's both trust from loopback, and a session gateway in front of it. */
export async function startTrustedApp(env: Readonly<Record<string, string>> = {}): Promise<{ readonly cluster: Cluster; readonly gw: SessionGateway; close(): Promise<void> }> {
  const cluster = await startCluster();
  try {
    await cluster.sql.unsafe("create role app login");
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    const gw = await startSessionGateway("host all app 127.0.0.1/32 trust\n", cluster.port, env);
    return {
      cluster,
      gw,
      async close() {
        await gw.close();
        await cluster.stop();
      },
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
