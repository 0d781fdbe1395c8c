// A minimal PostgreSQL wire client for asking a real server which pg_hba.conf
// line a connection attempt matches. postgres.js cannot bind a chosen local
// address, and we need attempts from many 127.0.0.0/8 sources, optionally over
// SSL, as physical-replication connections, and with deliberately wrong
// passwords (PostgreSQL names the matched line only when authentication fails).
import { createHash, randomBytes } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export interface Attempt {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
  readonly ssl?: boolean;
  readonly user: string;
  readonly database: string;
  readonly replication?: boolean;
  /** Password to answer with; a wrong one makes the server log the matched line. */
  readonly password?: string;
}

export type Outcome =
  | { readonly kind: "ok"; readonly requested: AuthRequest }
  | { readonly kind: "error"; readonly requested: AuthRequest; readonly code: string; readonly message: string };

/** What the server asked for before deciding: none (trust/reject/no match) or a password exchange. */
export type AuthRequest = "none" | "password" | "md5" | "scram-sha-256" | "other";

class Reader {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  constructor(sock: Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    sock.on("close", () => {
      this.ended = true;
      this.wake();
    });
    sock.on("error", () => {
      this.ended = true;
      this.wake();
    });
  }
  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw new Error("connection closed by server");
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  async message(): Promise<{ type: string; body: Buffer }> {
    const head = await this.bytes(5);
    const len = head.readInt32BE(1);
    return { type: String.fromCharCode(head[0]!), body: await this.bytes(len - 4) };
  }
}

function frame(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, "utf8"), Buffer.from([0])]);
}

function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const key = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    out[key] = body.subarray(i + 1, end).toString("utf8");
    i = end + 1;
  }
  return out;
}

function open(a: Attempt): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: a.host, port: a.port, ...(a.localAddress ? { localAddress: a.localAddress } : {}) });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

async function startTls(raw: Socket, reader: Reader): Promise<Socket> {
  const req = Buffer.alloc(8);
  req.writeInt32BE(8, 0);
  req.writeInt32BE(80877103, 4);
  raw.write(req);
  const answer = (await reader.bytes(1)).toString("latin1");
  if (answer !== "S") throw new Error("server refused SSL");
  return new Promise((resolve, reject) => {
    const t = tlsConnect({ socket: raw, rejectUnauthorized: false }, () => resolve(t));
    t.once("error", reject);
  });
}

function scramClientFinal(serverFirst: string, clientNonce: string): Buffer {
  const attrs = Object.fromEntries(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)]));
  if (!attrs.r?.startsWith(clientNonce)) throw new Error("bad SCRAM nonce");
  // A well-formed but wrong proof: enough for the server to fail authentication and log the line.
  return Buffer.from(`c=biws,r=${attrs.r},p=${randomBytes(32).toString("base64")}`);
}

export async function attempt(a: Attempt): Promise<Outcome> {
  const raw = await open(a);
  let sock: Socket = raw;
  let reader = new Reader(raw);
  try {
    if (a.ssl) {
      sock = await startTls(raw, reader);
      reader = new Reader(sock);
    }
    const params = [cstr("user"), cstr(a.user), cstr("database"), cstr(a.database)];
    if (a.replication) params.push(cstr("replication"), cstr("true"));
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), ...params, Buffer.from([0])]);
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length + 4);
    sock.write(Buffer.concat([len, body]));

    const password = a.password ?? "wrong-password";
    let requested: AuthRequest = "none";
    let clientNonce = "";
    for (;;) {
      const m = await reader.message();
      if (m.type === "E") {
        const f = errorFields(m.body);
        return { kind: "error", requested, code: f.C ?? "", message: f.M ?? "" };
      }
      if (m.type !== "R") continue;
      const code = m.body.readInt32BE(0);
      if (code === 0) return { kind: "ok", requested };
      if (code === 3) {
        requested = "password";
        sock.write(frame("p", cstr(password)));
      } else if (code === 5) {
        requested = "md5";
        const salt = m.body.subarray(4, 8);
        const inner = createHash("md5").update(password + a.user).digest("hex");
        const outer = createHash("md5").update(Buffer.concat([Buffer.from(inner), salt])).digest("hex");
        sock.write(frame("p", cstr("md5" + outer)));
      } else if (code === 10) {
        requested = "scram-sha-256";
        clientNonce = randomBytes(18).toString("base64");
        const first = Buffer.from(`n,,n=,r=${clientNonce}`);
        const len4 = Buffer.alloc(4);
        len4.writeInt32BE(first.length);
        sock.write(frame("p", Buffer.concat([cstr("SCRAM-SHA-256"), len4, first])));
      } else if (code === 11) {
        sock.write(frame("p", scramClientFinal(m.body.subarray(4).toString("utf8"), clientNonce)));
      } else if (code === 12) {
        continue;
      } else {
        requested = "other";
        sock.destroy();
        return { kind: "error", requested, code: "", message: `unsupported auth request ${code}` };
      }
    }
  } finally {
    sock.destroy();
    raw.destroy();
  }
}
