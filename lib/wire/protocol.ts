// PostgreSQL's frontend/backend protocol (version 3.0), as much of it as a
// gateway in the middle needs: the packets a connection starts with, the
// framing of typed messages, and the few backend messages the gateway writes
// itself (authentication requests, its own key, errors). Bytes only, Web APIs
// only: the same code frames a WebSocket and a TCP socket.
import { GatewayError, gatewayError, SQLSTATE, type PgErrorFields } from "../errors.ts";

/** The codes a startup packet may carry in place of a protocol version. */
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
/** Protocol 3.0. */
export const PROTOCOL_3_0 = 196608;

/** PostgreSQL's own bound on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_BYTES = 10_000;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export type StartupPacket =
  | { readonly kind: "ssl" }
  | { readonly kind: "gssenc" }
  | { readonly kind: "cancel"; readonly pid: number; readonly secret: number }
  | {
      readonly kind: "startup";
      readonly major: number;
      readonly minor: number;
      /** Every parameter as sent, in order (user, database, options, GUCs, _pq_ options). */
      readonly parameters: ReadonlyMap<string, string>;
    };

const violation = (message: string) => gatewayError(SQLSTATE.protocolViolation, message, { severity: "FATAL" });

/** The length a startup packet announces, once 4 bytes have arrived; refused when it cannot be one. */
export function startupLength(bytes: Uint8Array): number {
  const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0);
  if (length < 8 || length > MAX_STARTUP_BYTES) throw violation("invalid length of startup packet");
  return length;
}

/** A whole startup packet (its length word included). */
export function parseStartup(packet: Uint8Array): StartupPacket {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const code = view.getInt32(4);
  if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
    if (packet.length !== 8) throw violation("invalid length of startup packet");
    return { kind: code === SSL_REQUEST ? "ssl" : "gssenc" };
  }
  if (code === CANCEL_REQUEST) {
    // Protocol 3.2 allows longer keys; the gateway hands out 3.0 keys only.
    if (packet.length !== 16) throw violation("invalid length of query cancel packet");
    return { kind: "cancel", pid: view.getInt32(8), secret: view.getInt32(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  const parameters = new Map<string, string>();
  if (major === 3) {
    // name NUL value NUL ... NUL
    let at = 8;
    let terminated = false;
    const strings: string[] = [];
    while (at < packet.length) {
      const end = packet.indexOf(0, at);
      if (end < 0) throw violation("invalid startup packet layout: expected terminator as last byte");
      if (end === at && strings.length % 2 === 0) {
        if (end !== packet.length - 1) throw violation("invalid startup packet layout: expected terminator as last byte");
        terminated = true;
        break;
      }
      let text: string;
      try {
        text = strictUtf8.decode(packet.subarray(at, end));
      } catch {
        throw violation("invalid startup packet: a parameter is not valid UTF-8");
      }
      strings.push(text);
      at = end + 1;
    }
    if (!terminated || strings.length % 2 !== 0) throw violation("invalid startup packet layout: expected terminator as last byte");
    for (let i = 0; i < strings.length; i += 2) parameters.set(strings[i]!, strings[i + 1]!);
  }
  return { kind: "startup", major, minor, parameters };
}

/** A big-endian int32 at `at`, signed as PostgreSQL's Int32 (read by hand: a DataView per message costs more than the message's own handling). */
export const int32At = (b: Uint8Array, at: number): number => (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;

/** A big-endian int16 at `at`, signed. */
export const int16At = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16)) >> 16;

/** Byte runs, one after another, in one buffer. */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A typed message: one type byte, then its length (itself included) and body. */
export interface Message {
  readonly type: number;
  /** The whole message, header included, as it goes on the wire. */
  readonly bytes: Uint8Array;
  /** The body, after the 5-byte header. */
  readonly body: Uint8Array;
}

/**
 * Cuts a byte stream into typed messages (or, first, one startup packet),
 * whatever the chunking: split across frames, several in one. A length below
 * 4 or above `maxBytes` is refused before anything of it is kept.
 */
export class MessageReader {
  /** What has arrived and not been read: the first chunk from `offset` on, then the rest whole. */
  private chunks: Uint8Array[] = [];
  private offset = 0;
  private buffered = 0;

  /**
   * `copy: false` hands out views of the chunks pushed (no copy per
   * message), for a reader whose chunks are never reused: a socket's own
   * 'data' buffers, which Node allocates afresh for each read.
   */
  constructor(
    private readonly maxBytes: number,
    private readonly options: { readonly copy: boolean } = { copy: true },
  ) {}

  get pending(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * Whether the next `n` unread bytes have arrived; if so they are made one
   * run in the first chunk (joined when they straddle chunks). Read by
   * offset, not by slicing: a view per step costs more than a message's own
   * handling.
   */
  private arrived(n: number): boolean {
    if (this.buffered < n) return false;
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) return true;
    this.chunks = [joinBytes([first.subarray(this.offset), ...this.chunks.slice(1)])];
    this.offset = 0;
    return true;
  }

  /** The next `n` bytes (arrived() said so), consumed: a view, or a copy (the caller may keep it while the stream's buffers are reused). */
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    const view = first.subarray(this.offset, this.offset + n);
    this.offset += n;
    this.buffered -= n;
    if (this.offset === first.length) {
      this.chunks.shift();
      this.offset = 0;
    }
    return this.options.copy ? view.slice() : view;
  }

  /** The startup packet, once whole. */
  startup(): Uint8Array | undefined {
    if (!this.arrived(4)) return undefined;
    const length = startupLength(this.chunks[0]!.subarray(this.offset, this.offset + 4));
    return this.arrived(length) ? this.take(length) : undefined;
  }

  /** The next typed message, once whole. */
  next(): Message | undefined {
    if (!this.arrived(5)) return undefined;
    const length = int32At(this.chunks[0]!, this.offset + 1);
    if (length < 4) throw violation("invalid message length");
    if (length + 1 > this.maxBytes) throw gatewayError(SQLSTATE.programLimitExceeded, `message of ${length + 1} bytes is larger than the ${this.maxBytes} bytes a session message may be`, { severity: "FATAL" });
    if (!this.arrived(length + 1)) return undefined;
    const bytes = this.take(length + 1);
    return { type: bytes[0]!, bytes, body: bytes.subarray(5) };
  }

  /** The type byte of the next message, once it has arrived. */
  nextType(): number | undefined {
    return this.chunks[0]?.[this.offset];
  }

  /** Whatever has arrived and not been read, handed on as it is. */
  drain(): Uint8Array[] {
    const out = this.chunks;
    if (this.offset > 0) out[0] = out[0]!.subarray(this.offset);
    this.chunks = [];
    this.offset = 0;
    this.buffered = 0;
    return out;
  }
}

/** Builds one message: type byte, length, body. */
export class MessageWriter {
  private parts: Uint8Array[] = [];
  private size = 0;

  int32(n: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, n);
    return this.bytes(b);
  }

  int16(n: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setInt16(0, n);
    return this.bytes(b);
  }

  /** A NUL-terminated string. */
  cstring(text: string): this {
    this.bytes(utf8.encode(text));
    return this.bytes(new Uint8Array(1));
  }

  bytes(b: Uint8Array): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  /** A typed message (`type` a character), or with no type a startup-style packet. */
  finish(type?: string): Uint8Array {
    const header = type === undefined ? 4 : 5;
    const out = new Uint8Array(header + this.size);
    const view = new DataView(out.buffer);
    if (type !== undefined) out[0] = type.charCodeAt(0);
    view.setInt32(header - 4, 4 + this.size);
    let at = header;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** AuthenticationOk, AuthenticationCleartextPassword: `R` with a code. */
export const authentication = (code: 0 | 3) => new MessageWriter().int32(code).finish("R");

export const backendKeyData = (pid: number, secret: number) => new MessageWriter().int32(pid).int32(secret).finish("K");

/** The newest minor version the gateway speaks, and the protocol options it does not know. */
export const negotiateProtocolVersion = (minor: number, unrecognized: readonly string[]) => {
  const w = new MessageWriter().int32((3 << 16) | minor).int32(unrecognized.length);
  for (const name of unrecognized) w.cstring(name);
  return w.finish("v");
};

/** ErrorResponse field codes (protocol "Error and Notice Message Fields"). */
const FIELD_CODES: Record<keyof PgErrorFields, string> = {
  severity: "S",
  code: "C",
  message: "M",
  detail: "D",
  hint: "H",
  position: "P",
  internalPosition: "p",
  internalQuery: "q",
  where: "W",
  schema: "s",
  table: "t",
  column: "c",
  dataType: "d",
  constraint: "n",
  file: "F",
  line: "L",
  routine: "R",
};

/** An ErrorResponse carrying a GatewayError's fields, as FATAL: the gateway speaks on a session only to end it. */
export function errorResponse(err: GatewayError): Uint8Array {
  const w = new MessageWriter();
  const fields = err.fields as unknown as Readonly<Record<string, string | undefined>>;
  w.bytes(utf8.encode("S")).cstring("FATAL");
  // PostgreSQL 9.6+ also sends the untranslated severity, which drivers prefer.
  w.bytes(utf8.encode("V")).cstring("FATAL");
  for (const [name, code] of Object.entries(FIELD_CODES)) {
    if (name === "severity") continue;
    const value = fields[name];
    if (value !== undefined) w.bytes(utf8.encode(code)).cstring(value.replaceAll("\0", ""));
  }
  w.bytes(new Uint8Array(1));
  return w.finish("E");
}

/** The fields of an ErrorResponse (or NoticeResponse) body. */
export function parseErrorFields(body: Uint8Array): PgErrorFields {
  const byCode = new Map(Object.entries(FIELD_CODES).map(([name, code]) => [code, name]));
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at]!);
    const end = body.indexOf(0, at + 1);
    if (end < 0) break;
    const name = byCode.get(code);
    if (name) out[name] = new TextDecoder().decode(body.subarray(at + 1, end));
    at = end + 1;
  }
  return { code: out.code ?? SQLSTATE.internalError, message: out.message ?? "unknown error", ...out } as PgErrorFields;
}

/** A NUL-terminated string at the start of `body`, and the rest. */
export function cstringAt(body: Uint8Array, at = 0): { text: string; next: number } | undefined {
  const end = body.indexOf(0, at);
  if (end < 0) return undefined;
  try {
    return { text: strictUtf8.decode(body.subarray(at, end)), next: end + 1 };
  } catch {
    return undefined;
  }
}

/** An ErrorResponse received from the server, as a value. */
export const serverError = (body: Uint8Array) => new GatewayError(parseErrorFields(body));
