// One client session carrying PostgreSQL's own protocol (a WebSocket now, a
// TCP socket alike): the startup packet read and answered as PostgreSQL
// would, the caller verified through the same core as HTTP requests, then a
// dedicated upstream connection and the bytes relayed both ways. The gateway
// reads only message boundaries on the way (for its limits and to speak at a
// boundary); what the client does is its own session's business.
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { callerFor, startupParameters, type PeerInfo } from "../connection/caller.ts";
import type { Admitted, GatewayCore } from "../gateway/connect.ts";
import type { Log } from "../log.ts";
import type { LoginRequest, ServerStream } from "../upstream/session-connection.ts";
import { authentication, backendKeyData, cstringAt, errorResponse, MessageReader, negotiateProtocolVersion, parseStartup, type StartupPacket } from "./protocol.ts";
import { BoundaryScanner } from "./boundaries.ts";

/** The client's side, as the framing carries it. */
export interface ClientChannel {
  send(bytes: Uint8Array): void;
  /** Bytes sent and not yet written out: above a mark, the server is paused until `drained` finds them few again. */
  readonly buffered: number;
  close(): void;
  /** Stop reading the client (its messages wait while the server's side is full). */
  pause(): void;
  resume(): void;
  /**
   * TLS inside the stream, where the framing can (PostgreSQL's TCP port): after
   * the session has answered 'S' to an SSLRequest, the handshake, and the
   * connection as it then is (encrypted, a client certificate). Absent: 'N'.
   */
  startTls?(): Promise<PeerInfo>;
}

export interface SessionLimits {
  /** Sessions at once, authenticated or not (PostgreSQL's max_connections). */
  readonly maxSessions: number;
  /** Sessions at once per role requested. */
  readonly maxPerRole: number;
  /** Sessions at once per caller identity (where the verification names one apart from the role). */
  readonly maxPerIdentity: number;
  /** A session waiting for its client this long (nothing running, nothing half-sent) is ended. */
  readonly idleMs: number;
  /** A session older than this is ended at its next idle point. */
  readonly lifetimeMs: number;
  /** The largest message a client may send. */
  readonly maxMessageBytes: number;
  /** From the connection to the session being ready (PostgreSQL's authentication_timeout). */
  readonly authTimeoutMs: number;
}

export interface SessionDeps {
  readonly core: Pick<GatewayCore, "admit">;
  /** Logs in upstream on a connection of the session's own. */
  open(request: LoginRequest): Promise<ServerStream>;
  /** Sends a CancelRequest for the server's key; false when there was no room to (dropped). */
  cancel(key: ServerStream["key"]): Promise<boolean>;
  readonly limits: SessionLimits;
  readonly log: Log;
}

/** Adds `delta` to `key`'s count, forgetting a count that falls to nothing. */
function count(counts: Map<string, number>, key: string, delta: 1 | -1): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/** Above this many bytes unsent to the client, the server is not read, until they are below the low mark. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 * 1024;

/** Startup parameters that are not settings for the upstream session. */
const NOT_SETTINGS = new Set(["user", "database", "replication"]);

const fatal = (code: GatewayError["code"], message: string) => new GatewayError({ code, message, severity: "FATAL" });

type State = "startup" | "tls" | "admitting" | "password" | "relay" | "closed";

export class ClientSession {
  state: State = "startup";
  role: string | undefined;
  /** The caller identity it is counted for (a token's subject, a mapped principal); undefined for none. */
  identity: string | undefined;
  /** The key handed to the client, and the server's it stands for. */
  key: { pid: number; secret: number } | undefined;
  server: ServerStream | undefined;
  /** A CancelRequest for this session is on its way upstream. */
  cancelling = false;
  readonly started = Date.now();
  private readonly reader: MessageReader;
  private readonly authTimer: ReturnType<typeof setTimeout>;
  private asked: { resolve(password: string): void; reject(err: unknown): void } | undefined;
  private askedEver = false;
  private readonly fromClient: BoundaryScanner;
  private readonly fromServer = new BoundaryScanner(Number.MAX_SAFE_INTEGER);
  /** Queries and Syncs sent and not yet answered by ReadyForQuery. */
  private unanswered = 0;
  private quietSince = Date.now();
  /** The client sent Terminate: the server closing is the end it asked for. */
  private terminated = false;
  /** The client sent something since the server's last ReadyForQuery answered all it had sent. */
  private clientSpoke = false;

  /** An SSLRequest was answered with TLS already. */
  private negotiated = false;

  constructor(
    private readonly registry: Sessions,
    /** The connection's facts; TLS negotiated inside the stream changes them (startTls). */
    private peer: PeerInfo,
    private readonly channel: ClientChannel,
  ) {
    const limits = registry.deps.limits;
    this.reader = new MessageReader(limits.maxMessageBytes);
    this.fromClient = new BoundaryScanner(limits.maxMessageBytes);
    this.authTimer = setTimeout(() => this.fail(fatal(SQLSTATE.queryCanceled, "canceling authentication due to timeout")), limits.authTimeoutMs);
  }

  /** Bytes from the client. */
  data(chunk: Uint8Array): void {
    if (this.state === "closed") return;
    try {
      if (this.state === "relay") this.relayFromClient(chunk);
      else {
        this.reader.push(chunk);
        this.pump();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** The client is gone. */
  closed(): void {
    this.end();
  }

  /** The framing sent out some of what was buffered: below the low mark, the server is read again. */
  drained(): void {
    if (this.channel.buffered < LOW_WATER) this.server?.resume();
  }

  private pump(): void {
    while (this.state === "startup") {
      const packet = this.reader.startup();
      if (!packet) return;
      this.startup(parseStartup(packet));
    }
    if (this.state === "password" && this.asked) {
      const m = this.reader.next();
      if (!m) return;
      if (m.type !== 0x70 /* p */) throw fatal(SQLSTATE.protocolViolation, `expected password response, got message type ${m.type}`);
      const text = cstringAt(m.body);
      if (!text || text.next !== m.body.length) throw fatal(SQLSTATE.protocolViolation, "invalid password packet size");
      const asked = this.asked;
      this.asked = undefined;
      this.state = "admitting";
      asked.resolve(text.text);
    }
    // Messages sent ahead (a pipelined first query) wait, bounded like one message.
    if (this.reader.pending > this.registry.deps.limits.maxMessageBytes) throw fatal(SQLSTATE.programLimitExceeded, "too much data sent before the session was ready");
  }

  private startup(packet: StartupPacket): void {
    switch (packet.kind) {
      case "ssl":
        // Once, before the startup packet, and only with nothing sent behind it (as PostgreSQL has it).
        if (this.channel.startTls && !this.negotiated && this.reader.pending === 0) {
          this.negotiated = true;
          this.state = "tls";
          this.channel.send(new Uint8Array([0x53 /* S */]));
          this.channel.startTls().then(
            (peer) => {
              if (this.state !== "tls") return;
              this.peer = peer;
              this.state = "startup";
            },
            (err) => this.fail(err),
          );
          return;
        }
        // TLS over a WebSocket is the wss layer's: nothing to negotiate inside it.
        this.channel.send(new Uint8Array([0x4e /* N */]));
        return;
      case "gssenc":
        this.channel.send(new Uint8Array([0x4e /* N */]));
        return;
      case "cancel":
        this.state = "closed";
        this.registry.cancel(packet.pid, packet.secret);
        this.finish();
        return;
      case "startup":
        break;
    }
    if (packet.major !== 3) throw fatal(SQLSTATE.featureNotSupported, `unsupported frontend protocol ${packet.major}.${packet.minor}: server supports 3.0 to 3.0`);
    const options = [...packet.parameters.keys()].filter((name) => name.startsWith("_pq_."));
    if (packet.minor > 0 || options.length > 0) this.channel.send(negotiateProtocolVersion(0, options));
    const params = packet.parameters;
    const user = params.get("user");
    if (user === undefined || user === "") throw fatal(SQLSTATE.invalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet");
    const replication = params.get("replication");
    if (replication !== undefined && !["false", "off", "no", "0"].includes(replication.toLowerCase())) {
      throw fatal(SQLSTATE.featureNotSupported, "replication connections are not supported through hbagate");
    }
    const database = params.get("database") || user;
    const caller = callerFor(this.peer, database, user, [], startupParameters(Object.fromEntries([...params].filter(([k]) => k === "application_name" || k === "options"))));
    const settings = [...params].filter(([name]) => !NOT_SETTINGS.has(name) && !name.startsWith("_pq_."));
    this.state = "admitting";
    const ask = () =>
      new Promise<string>((resolve, reject) => {
        if (this.state === "closed") return reject(fatal(SQLSTATE.connectionFailure, "the client went away"));
        this.askedEver = true;
        this.state = "password";
        this.asked = { resolve, reject };
        this.channel.send(authentication(3));
        // The client may have sent it already (Neon's client pipelines it).
        queueMicrotask(() => this.data(new Uint8Array(0)));
      });
    const open = (admitted: Admitted) => {
      // Counted for its role once verified, as PostgreSQL counts a role's connections: a stranger
      // sitting on the password prompt uses none of the role's places.
      if (this.state === "closed") throw fatal(SQLSTATE.connectionFailure, "the client went away");
      const refused = this.registry.claim(this, admitted.user, admitted.identity);
      if (refused === "role") throw fatal(SQLSTATE.tooManyConnections, `too many connections for role "${admitted.user}"`);
      if (refused === "identity") throw fatal(SQLSTATE.tooManyConnections, `too many connections for one caller of role "${admitted.user}"`);
      const opening = this.registry.deps.open({ database: admitted.database, user: admitted.user, password: admitted.password, parameters: [...settings, ...admitted.settings] });
      // The login upstream goes on whatever the client does meanwhile: the places stay taken until it settles.
      this.opening = true;
      const settled = () => {
        this.opening = false;
        if (this.finished) this.registry.release(this);
      };
      opening.then(settled, settled);
      return opening;
    };
    this.registry.deps.core.admit(caller, ask, open).then(
      (server) => {
        // What the client sent ahead is relayed here, and may be refused (a message announced
        // too large): that ends this session, never escapes as a rejection nobody handles.
        try {
          this.ready(server);
        } catch (err) {
          this.fail(err);
        }
      },
      (err) => this.fail(err),
    );
  }

  private ready(server: ServerStream): void {
    if (this.state === "closed") {
      server.end();
      return;
    }
    clearTimeout(this.authTimer);
    this.server = server;
    this.key = this.registry.keyFor(this);
    this.channel.send(authentication(0));
    for (const m of server.greeting) this.channel.send(m);
    this.channel.send(backendKeyData(this.key.pid, this.key.secret));
    this.channel.send(new Uint8Array([0x5a, 0, 0, 0, 5, 0x49])); // ReadyForQuery, idle
    this.state = "relay";
    // The ReadyForQuery just sent is the server's last word, as far as the client knows.
    this.fromServer.lastType = 0x5a;
    this.fromServer.lastReady = 0x49;
    this.quietSince = Date.now();
    server.onData((chunk) => this.relayFromServer(chunk));
    server.onDrain(() => this.channel.resume());
    server.onClose(() => this.serverGone());
    // What the client sent ahead goes first; a password it pipelined to a line that asked none is dropped.
    if (!this.askedEver && this.reader.nextType() === 0x70 /* p */) this.reader.next();
    for (const chunk of this.reader.drain()) this.relayFromClient(chunk);
  }

  private relayFromClient(chunk: Uint8Array): void {
    const types = this.fromClient.scan(chunk);
    if (types === undefined) {
      throw fatal(SQLSTATE.programLimitExceeded, `message is larger than the ${this.registry.deps.limits.maxMessageBytes} bytes a session message may be`);
    }
    for (const t of types) {
      if (t === 0x51 /* Q */ || t === 0x53 /* S */ || t === 0x46 /* F */) this.unanswered++;
      else if (t === 0x58 /* X */) this.terminated = true;
    }
    // Anything from the client since the last ReadyForQuery may be running (an Execute without Sync).
    this.clientSpoke = true;
    this.quietSince = Date.now();
    if (this.server && !this.server.write(chunk)) this.channel.pause();
    // Terminate: the session ends here, whether or not the server closes its side (PGlite's socket does not).
    if (this.terminated) this.finish();
  }

  private relayFromServer(chunk: Uint8Array): void {
    const types = this.fromServer.scan(chunk) ?? [];
    for (const t of types) {
      if (t !== 0x5a /* Z */) continue;
      if (this.unanswered > 0) this.unanswered--;
      if (this.unanswered === 0) this.clientSpoke = false;
    }
    if (types.length > 0) this.quietSince = Date.now();
    this.channel.send(chunk);
    if (this.channel.buffered >= HIGH_WATER) this.server?.pause();
  }

  /**
   * Waiting for the client, as PostgreSQL's idle_session_timeout means it: the
   * server's last word a ReadyForQuery that answered everything sent, nothing
   * from the client since, neither side mid-message. (A client that makes the
   * count disagree with the server — a Query sent into an extended-protocol
   * error, which the server discards — is never idle: its session ends at its
   * lifetime plus the idle time instead.)
   */
  get idle(): boolean {
    return this.state === "relay" && this.unanswered === 0 && !this.clientSpoke && this.fromServer.lastType === 0x5a && this.fromClient.atBoundary && this.fromServer.atBoundary;
  }

  get idleFor(): number {
    return this.idle ? Date.now() - this.quietSince : 0;
  }

  /** Whether the client's last-seen transaction state is open (ReadyForQuery T or E). */
  get inTransaction(): boolean {
    return this.fromServer.lastReady !== undefined && this.fromServer.lastReady !== 0x49;
  }

  private serverGone(): void {
    if (this.state === "closed") return;
    // The client asked for the end (Terminate); a server that ended the session said why (FATAL ErrorResponse); one that vanished did not.
    if (this.terminated || (this.fromServer.lastType === 0x45 /* E */ && this.fromServer.atBoundary)) this.finish();
    else this.fail(fatal(SQLSTATE.connectionFailure, "the connection to the database was lost"));
  }

  /** Ends the session with an error the client reads (where a message can be placed), then closes both sides. */
  fail(err: unknown): void {
    if (this.state === "closed") return;
    const e = err instanceof GatewayError ? err : undefined;
    if (!e) this.registry.deps.log({ level: "error", msg: "session failed", error: err instanceof Error ? err.stack ?? err.message : String(err) });
    // Inside the relay, a message can only go between the server's messages.
    if (this.state !== "relay" || this.fromServer.atBoundary) this.channel.send(errorResponse(e ?? gatewayError(SQLSTATE.internalError, "internal error")));
    this.end();
  }

  private end(): void {
    const asked = this.asked;
    this.asked = undefined;
    this.finish();
    asked?.reject(fatal(SQLSTATE.connectionFailure, "the client went away"));
  }

  private finished = false;
  /** The upstream login is on its way: the session's places are released once it settles, not before. */
  private opening = false;
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.state = "closed";
    clearTimeout(this.authTimer);
    // Terminate: an open transaction rolls back, the server's backend ends.
    this.server?.end();
    this.channel.close();
    if (!this.opening) this.registry.release(this);
  }
}

/** Every session of the gateway: the limits across them, and their cancel keys. */
export class Sessions {
  private readonly all = new Set<ClientSession>();
  private readonly perRole = new Map<string, number>();
  private readonly perIdentity = new Map<string, number>();
  private readonly byPid = new Map<number, ClientSession>();
  private readonly sweep: ReturnType<typeof setInterval>;

  constructor(readonly deps: SessionDeps) {
    const every = Math.max(50, Math.min(1000, deps.limits.idleMs / 4, deps.limits.lifetimeMs / 4));
    this.sweep = setInterval(() => this.check(), every);
    this.sweep.unref?.();
  }

  get size(): number {
    return this.all.size;
  }

  /** A new client connection: its session, or undefined when the total bound refused it (told so, and closed). */
  accept(peer: PeerInfo, channel: ClientChannel): ClientSession | undefined {
    if (this.all.size >= this.deps.limits.maxSessions) {
      channel.send(errorResponse(fatal(SQLSTATE.tooManyConnections, "sorry, too many clients already")));
      channel.close();
      return undefined;
    }
    const session = new ClientSession(this, peer, channel);
    this.all.add(session);
    return session;
  }

  /** Counts the session for its role and caller identity, when both bounds allow; otherwise which one refused. */
  claim(session: ClientSession, role: string, identity: string | undefined): "role" | "identity" | undefined {
    if ((this.perRole.get(role) ?? 0) >= this.deps.limits.maxPerRole) return "role";
    if (identity !== undefined && (this.perIdentity.get(identity) ?? 0) >= this.deps.limits.maxPerIdentity) return "identity";
    count(this.perRole, role, 1);
    session.role = role;
    if (identity !== undefined) {
      count(this.perIdentity, identity, 1);
      session.identity = identity;
    }
    return undefined;
  }

  release(session: ClientSession): void {
    if (!this.all.delete(session)) return;
    if (session.role !== undefined) count(this.perRole, session.role, -1);
    if (session.identity !== undefined) count(this.perIdentity, session.identity, -1);
    if (session.key && this.byPid.get(session.key.pid) === session) this.byPid.delete(session.key.pid);
  }

  /** A key of the gateway's own for the session: the server's never reaches the client. */
  keyFor(session: ClientSession): { pid: number; secret: number } {
    const random = new Int32Array(2);
    for (;;) {
      crypto.getRandomValues(random);
      const pid = random[0]! & 0x7fffffff;
      if (pid === 0 || this.byPid.has(pid)) continue;
      this.byPid.set(pid, session);
      return { pid, secret: random[1]! };
    }
  }

  /** A CancelRequest: forwarded as the server's own when the key is one this gateway handed out, else ignored (as PostgreSQL does). */
  cancel(pid: number, secret: number): void {
    const session = this.byPid.get(pid);
    if (!session?.key || !session.server) return;
    // Constant-time over the 32 bits: nothing learnt from how fast a wrong secret is dropped.
    if (((session.key.secret ^ secret) | 0) !== 0) return;
    // One cancel on its way per session: more cannot cancel more, and each would hold an upstream connection.
    if (session.cancelling) return;
    session.cancelling = true;
    this.deps
      .cancel(session.server.key)
      .then((sent) => {
        if (!sent) this.deps.log({ level: "warn", msg: "cancel request dropped: no upstream connection free for it" });
      })
      .catch((err: unknown) => this.deps.log({ level: "warn", msg: "cancel request failed", error: err instanceof Error ? err.message : String(err) }))
      .finally(() => (session.cancelling = false));
  }

  private check(): void {
    const { idleMs, lifetimeMs } = this.deps.limits;
    const now = Date.now();
    for (const s of this.all) {
      if (s.state !== "relay") continue;
      const idleFor = s.idleFor;
      if (idleFor >= idleMs) {
        s.fail(
          s.inTransaction
            ? fatal(SQLSTATE.idleInTransactionSessionTimeout, "terminating connection due to idle-in-transaction timeout")
            : fatal(SQLSTATE.idleSessionTimeout, "terminating connection due to idle-session timeout"),
        );
      } else if (now - s.started >= lifetimeMs && (s.idle || now - s.started >= lifetimeMs + idleMs)) {
        s.fail(fatal(SQLSTATE.adminShutdown, "terminating connection: the session lifetime has been reached"));
      }
    }
  }

  /** Ends every session (the gateway is stopping). */
  close(): void {
    clearInterval(this.sweep);
    for (const s of [...this.all]) s.fail(fatal(SQLSTATE.adminShutdown, "terminating connection due to administrator command"));
  }
}
