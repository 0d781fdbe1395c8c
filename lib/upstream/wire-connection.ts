// A pool connection the gateway speaks to itself, message by message, rather
// than through a driver: a request's statement and the session reset behind
// it leave in one write and come back as one read, the reset's statements
// prepared once per connection (PostgreSQL plans them once, not per request).
// What the request path needs and no more: the extended protocol with text
// parameters and text results, named statements kept per connection, rows
// handed on as they arrive, errors as PostgreSQL sent them. Logged in by
// session-connection.ts, as a WebSocket session's connection is.
//
// Each exchange ends at a ReadyForQuery, and the server answers exchanges in
// the order they were written, so the answers are matched to a queue.
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { int16At, int32At, joinBytes, MessageReader, MessageWriter, serverError, type Message } from "../wire/protocol.ts";
import { RESET_CHECK, RESET_COMMANDS } from "./session-reset.ts";
import { ANSWER_TOO_LARGE, answerTooLarge, SESSION_ENDED } from "./errors.ts";
import type { ServerStream } from "./session-connection.ts";

/** A result column, as RowDescription describes it. */
export interface Column {
  readonly name: string;
  readonly table: number;
  readonly number: number;
  readonly type: number;
  readonly size: number;
  readonly modifier: number;
}

/** A row's values: PostgreSQL's text, or null for NULL. */
export type Values = readonly (Uint8Array | null)[];

/** How a statement ended: its command tag, split as drivers split it, and its columns. */
export interface Completion {
  readonly command: string;
  readonly count: number | null;
  readonly columns: readonly Column[];
}

export interface StatementCall {
  readonly text: string;
  readonly params: readonly (string | null)[];
  /** Prepared under a name of this connection's, kept for the next time the same text comes. */
  readonly prepare: boolean;
  /** The statement's columns, before its first row. */
  columns?(columns: readonly Column[]): void;
  /** Each row, as it arrives. */
  row(values: Values): void;
}

/** A statement run ahead of another in its implicit transaction (a request's settings): its rows are not kept. */
export interface Prelude {
  readonly text: string;
  readonly params: readonly (string | null)[];
  /** Prepared under a name of this connection's, as a statement's is. */
  readonly prepare: boolean;
}

/** What the reset found: the connection as a new request should find it, or not to be reused. */
export type ResetOutcome = "clean" | "dirty" | "closed";

/** The transaction status in the last ReadyForQuery: idle, in a transaction, in a failed one. */
export type TransactionStatus = "I" | "T" | "E";

/** Bytes one server message may take, unless a smaller bound is given: PostgreSQL's own limit on a row. */
const MAX_MESSAGE_BYTES = 1 << 30;

/** The connection was lost with an exchange on it (what postgres.js calls CONNECTION_CLOSED). */
const lost = (cause?: Error) => Object.assign(new Error("the connection to the server was lost", { cause }), { code: "CONNECTION_CLOSED" });
const ended = () => Object.assign(new Error("the server session ended"), { code: SESSION_ENDED });

/** The error a statement whose plan went stale under DDL fails with; re-prepared, it runs. */
const STALE_PLAN = "cached plan must not change result type";

/** Statements prepared in SQL the reset deallocates; past this many, the connection is closed instead. */
const MAX_DEALLOCATIONS = 16;

/** Errors the server answered a statement's Bind with: nothing of the statement ran. */
const failedAtBind = new WeakSet<Error>();

/** What a row or columns callback threw: the statement's error, the connection unharmed. */
const callbackError = (err: unknown): Error =>
  err instanceof GatewayError ? err : new GatewayError({ code: SQLSTATE.internalError, message: "the answer could not be read" }, { cause: err });

const utf8 = new TextDecoder();
const encoder = new TextEncoder();
const message = (type: string, build: (w: MessageWriter) => MessageWriter = (w) => w) => build(new MessageWriter()).finish(type);
const SYNC = message("S");
const DESCRIBE_PORTAL = message("D", (w) => w.bytes(Uint8Array.of(0x50)).cstring(""));
const EXECUTE = message("E", (w) => w.cstring("").int32(0));

function parse(name: string, text: string): Uint8Array {
  return message("P", (w) => w.cstring(name).cstring(text).int16(0));
}

function putInt32(out: Uint8Array, at: number, n: number): void {
  out[at] = n >>> 24;
  out[at + 1] = n >>> 16;
  out[at + 2] = n >>> 8;
  out[at + 3] = n;
}

/** Parameters longer than this are encoded on their own, at their exact size: the worst-case bound would triple a large one. */
const ENCODE_APART = 4096;

/**
 * Bind to the unnamed portal: text parameters of types the server infers,
 * text results. Short parameters are encoded straight into one buffer sized
 * for the worst case (a UTF-16 unit is at most three UTF-8 bytes): every
 * request sends one or more, and a buffer per parameter is what this saves.
 */
function bind(name: string, params: readonly (string | null)[]): Uint8Array {
  // Type, length, the portal's name, the statement's, no parameter formats, the parameters, no result formats.
  let bound = 1 + 4 + 1 + 3 * name.length + 1 + 2 + 2 + 2;
  let apart: (Uint8Array | undefined)[] | undefined;
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === null) bound += 4;
    else if (p.length <= ENCODE_APART) bound += 4 + 3 * p.length;
    else {
      apart ??= [];
      apart[i] = encoder.encode(p);
      bound += 4 + apart[i]!.length;
    }
  }
  const out = new Uint8Array(bound);
  out[0] = 0x42 /* B */;
  let at = 6 + encoder.encodeInto(name, out.subarray(6)).written;
  // The name's terminator, then no parameter formats (all text): zero bytes, as allocated.
  out[at + 3] = params.length >>> 8;
  out[at + 4] = params.length;
  at += 5;
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    const encoded = apart?.[i];
    if (p === null) {
      putInt32(out, at, -1);
      at += 4;
    } else if (encoded) {
      putInt32(out, at, encoded.length);
      out.set(encoded, at + 4);
      at += 4 + encoded.length;
    } else {
      const written = encoder.encodeInto(p, out.subarray(at + 4)).written;
      putInt32(out, at, written);
      at += 4 + written;
    }
  }
  // No result formats (all text): two zero bytes.
  at += 2;
  putInt32(out, 1, at - 1);
  return out.subarray(0, at);
}

/**
 * Preludes' Binds, by the statement name they bind (the settings statement's
 * name differs between connections): a token's claims are the same prelude
 * for every request while it is remembered.
 */
const boundPreludes = new WeakMap<Prelude, Map<string, Uint8Array>>();

/** The Bind of `prelude` to the statement `name` (never written to: the same bytes go out again). */
function boundPrelude(prelude: Prelude, name: string): Uint8Array {
  let byName = boundPreludes.get(prelude);
  if (byName === undefined) boundPreludes.set(prelude, (byName = new Map()));
  let bytes = byName.get(name);
  if (bytes === undefined) byName.set(name, (bytes = bind(name, prelude.params)));
  return bytes;
}

const close = (name: string) => message("C", (w) => w.bytes(Uint8Array.of(0x53)).cstring(name));

/** One exchange's reader: it sees every message up to and including its ReadyForQuery. */
interface Exchange {
  message(m: Message): void;
  /** The exchange's ReadyForQuery arrived. */
  ready(): void;
  fail(err: Error): void;
}

// One implicit transaction (one Sync) for the whole reset: whether the request left a transaction
// open is the status in its ReadyForQuery, not now() against statement_timestamp(). Nothing in it
// varies by request (the check draws the new seed on the server), so its bytes are made once: the
// commands prepared under names once per connection, the check parsed as the unnamed statement
// when a statement run once took its place, and run every time.
const PREPARE_RESET = joinBytes(RESET_COMMANDS.map((text, i) => parse(`hbagate_reset_${i}`, text)));
const RUN_COMMANDS = RESET_COMMANDS.flatMap((_, i) => [bind(`hbagate_reset_${i}`, []), EXECUTE]);
const RUN_RESET = joinBytes([...RUN_COMMANDS, bind("", []), EXECUTE, SYNC]);
const PARSE_CHECK_AND_RUN_RESET = joinBytes([...RUN_COMMANDS, parse("", RESET_CHECK), bind("", []), EXECUTE, SYNC]);

export class WireConnection {
  private readonly reader: MessageReader;
  private readonly queue: Exchange[] = [];
  private readonly prepared = new Map<string, string>();
  private named = 0;
  private pending: Uint8Array[] = [];
  private closed: Error | undefined;
  private resetReady = false;
  /** The session's client_encoding, as the server last reported it (ParameterStatus); logged in as UTF8. */
  private encoding = "UTF8";
  /**
   * Statements this connection has named on the server, counted in the
   * order the server answered (ParseComplete, CloseComplete): the reset's
   * check compares it with what the server holds, so that a statement of
   * the gateway's deallocated or replaced by a caller's SQL is found.
   */
  private namedOnServer = 0;
  /** Whether the unnamed statement is the reset's check (a statement run once replaces it). */
  private unnamedIsCheck = false;
  /** What the next statement carries ahead of it (carry()). */
  private carried: Prelude | undefined;
  /** Statements sent since the last reset was: a plan re-prepared and run again after the reset went out is one. */
  private sinceReset = 0;
  status: TransactionStatus = "I";
  /** Settles once the connection has closed, whichever way. */
  readonly ended: Promise<void>;

  /**
   * `maxMessageBytes`: a message announced larger (a row larger than any
   * response may be) cuts the connection before any of it is held.
   */
  constructor(
    private readonly server: ServerStream,
    maxMessageBytes = MAX_MESSAGE_BYTES,
  ) {
    // Views of the socket's chunks, not copies: Node allocates a new buffer for every read.
    this.reader = new MessageReader(maxMessageBytes, { copy: false });
    this.ended = new Promise((resolve) =>
      server.onClose((err) => {
        this.lose(err);
        resolve();
      }),
    );
    server.onData((chunk) => this.data(chunk));
  }

  /** The server's cancel key, for a CancelRequest on a connection of its own. */
  get key(): { readonly pid: number; readonly secret: number } {
    return this.server.key;
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  /** Whether `text` is prepared on this connection under a name of its own. */
  holds(text: string): boolean {
    return this.prepared.has(text);
  }

  /** Whether a statement went out after the last reset did (or no reset has yet). */
  get needsReset(): boolean {
    return this.sinceReset > 0;
  }

  /**
   * The next statement sent carries `prelude` ahead of it, in the same
   * implicit transaction (one Sync): the statement runs only if the prelude
   * did, and a failed statement rolls the prelude's changes back with its
   * own. One round trip for both.
   */
  carry(prelude: Prelude | undefined): void {
    this.carried = prelude;
  }

  /**
   * Sends one statement (Parse unless already prepared, Bind, Describe,
   * Execute, Sync), behind what it carries; settles at its ReadyForQuery
   * with its completion, or with the server's error (a GatewayError), or
   * with the loss of the connection. A plan gone stale under DDL is
   * re-prepared and run again, prelude and all, outside a transaction
   * (nothing of it ran).
   */
  async run(call: StatementCall): Promise<Completion> {
    const prelude = this.carried;
    this.carried = undefined;
    try {
      return await this.once(call, prelude);
    } catch (err) {
      // Only a plan found stale when the statement was bound: the same words from inside a
      // statement that ran (a procedure that committed, then ran a stale plan of its own) mean
      // work was done, and running it again would do it twice.
      if (err instanceof GatewayError && err.fields.message === STALE_PLAN && failedAtBind.has(err) && call.prepare && this.status === "I") {
        const name = this.prepared.get(call.text);
        this.prepared.delete(call.text);
        if (name !== undefined) this.send([close(name), SYNC], this.closing());
        return await this.once(call, prelude);
      }
      throw err;
    }
  }

  private once(call: StatementCall, prelude: Prelude | undefined): Promise<Completion> {
    const foreign = this.foreignEncoding();
    if (foreign) return Promise.reject(foreign);
    const parts: Uint8Array[] = [];
    // The Parses in this exchange, in order: each ParseComplete names the statement it prepared.
    const parsing: [text: string, name: string][] = [];
    const statement = (text: string, prepare: boolean): string => {
      // Known, or named earlier in this exchange (a caller's statement can be the prelude's own text):
      // one text is never prepared twice on a connection.
      const known = prepare ? (this.prepared.get(text) ?? parsing.find(([t, n]) => t === text && n !== "")?.[1]) : undefined;
      if (known !== undefined) return known;
      const name = prepare ? `hbagate_${++this.named}` : "";
      if (name === "") this.unnamedIsCheck = false;
      parts.push(parse(name, text));
      parsing.push([text, name]);
      return name;
    };
    if (prelude) parts.push(boundPrelude(prelude, statement(prelude.text, prelude.prepare)), EXECUTE);
    parts.push(bind(statement(call.text, call.prepare), call.params), DESCRIBE_PORTAL, EXECUTE, SYNC);
    this.sinceReset++;
    return new Promise<Completion>((resolve, reject) => {
      let columns: Column[] = [];
      let completion: Completion | undefined;
      let error: Error | undefined;
      // The prelude's row and CommandComplete come first; they are not the statement's.
      let preludeOpen = prelude !== undefined;
      // BindCompletes still to come before the statement's own (the prelude's).
      let bindsBefore = prelude ? 1 : 0;
      let bound = false;
      this.send(parts, {
        message: (m) => {
          switch (m.type) {
            case 0x32 /* 2 BindComplete */:
              if (bindsBefore-- === 0) bound = true;
              return;
            case 0x31 /* 1 ParseComplete */: {
              const [text, name] = parsing.shift() ?? ["", ""];
              if (name !== "") {
                this.prepared.set(text, name);
                this.namedOnServer++;
              }
              return;
            }
            case 0x54 /* T */:
              columns = rowDescription(m.body);
              try {
                call.columns?.(columns);
              } catch (err) {
                error ??= callbackError(err);
              }
              return;
            case 0x44 /* D */:
              if (error || preludeOpen) return;
              // A row the caller's side cannot take (a value nested too deeply for JSON): the
              // statement's error; the rest of its answer is read and dropped.
              try {
                call.row(dataRow(m.body));
              } catch (err) {
                error = callbackError(err);
              }
              return;
            case 0x43 /* C */:
              if (preludeOpen) preludeOpen = false;
              else completion = { ...commandTag(m.body), columns };
              return;
            case 0x49 /* I EmptyQueryResponse */:
              completion = { command: "", count: null, columns: [] };
              return;
            case 0x45 /* E */: {
              const e = serverError(m.body);
              if (!bound) failedAtBind.add(e);
              error ??= e;
              return;
            }
            case 0x47 /* G CopyIn */:
            case 0x48 /* H CopyOut */:
            case 0x57 /* W CopyBoth */:
              // Refused before it is sent (refused-statements.ts); should one start, the session cannot go on.
              this.destroy(gatewayError(SQLSTATE.featureNotSupported, "COPY is not supported by hbagate"));
              return;
            default:
              // BindComplete, NoData, notices, ParameterStatus, notifications: nothing to keep.
              return;
          }
        },
        ready: () => {
          // A statement that changed client_encoding: its text, and every parameter after it,
          // would no longer be the UTF-8 the gateway reads and writes.
          error ??= this.foreignEncoding();
          if (error) reject(error);
          else resolve(completion ?? { command: "", count: null, columns });
        },
        fail: reject,
      });
    });
  }

  /**
   * Sends the session reset (session-reset.ts) behind whatever was sent
   * before it: after a request's last statement, in the same write. "clean"
   * when every statement of it ran, no transaction was left open and every
   * statement the gateway named is still its own; a statement the request
   * prepared in SQL is deallocated on the way.
   *
   * The commands are prepared once per connection, under names; the check
   * is the unnamed statement, which SQL cannot name: a caller's DO block can
   * deallocate and re-prepare any named statement, the reset's own
   * included, and the check is what finds that out. It is parsed again only
   * after a statement run once took the unnamed statement's place.
   */
  async reset(): Promise<ResetOutcome> {
    const parts: Uint8Array[] = [];
    let preparing = 0;
    if (!this.resetReady) {
      parts.push(PREPARE_RESET);
      preparing = RESET_COMMANDS.length;
      this.resetReady = true;
    }
    parts.push(this.unnamedIsCheck ? RUN_RESET : PARSE_CHECK_AND_RUN_RESET);
    this.unnamedIsCheck = true;
    this.sinceReset = 0;
    let row: Values | undefined;
    let expected = -1;
    let completed = 0;
    let failed = false;
    try {
      await new Promise<void>((resolve, reject) =>
        this.send(parts, {
          message: (m) => {
            if (m.type === 0x31 && preparing > 0) {
              preparing--;
              this.namedOnServer++;
            } else if (m.type === 0x43) completed++;
            else if (m.type === 0x44 && completed === RESET_COMMANDS.length) {
              // The check's row, and what the server should hold as it ran.
              row = dataRow(m.body);
              expected = this.namedOnServer;
            } else if (m.type === 0x45) failed = true;
          },
          ready: resolve,
          fail: reject,
        }),
      );
    } catch {
      return "closed";
    }
    if (failed) {
      // Prepared statements of the reset's own may not all exist now: prepared again next time.
      this.resetReady = false;
      this.unnamedIsCheck = false;
      return "dirty";
    }
    // A transaction the request left open: the reset ran inside it, and it is still open.
    if (this.status !== "I") return "dirty";
    // RESET ALL restores the login's UTF8; a session that is not back to it is not reused.
    if (this.foreignEncoding()) return "dirty";
    // The check's row: pg_advisory_unlock_all(), the names prepared in SQL, how many the gateway's
    // are. One of the gateway's gone (deallocated, or replaced by SQL's): the reset itself, or the
    // next caller's statement, would run what a caller chose. Not reused.
    if (!row || row[2] === null || Number(utf8.decode(row[2])) !== expected) return "dirty";
    const names = row[1] ? textArray(utf8.decode(row[1])) : [];
    // Many (a loop in a DO block; PREPARE is not undone by a cancel or a rollback): a new
    // connection costs less than a DEALLOCATE each, and the request is answered at once.
    if (names.length > MAX_DEALLOCATIONS) return "dirty";
    // All in one write; part of the reset, not statements it has to undo.
    const deallocations = names.map((n) => this.run({ text: `DEALLOCATE "${n.replaceAll('"', '""')}"`, params: [], prepare: false, row: () => {} }));
    this.sinceReset -= names.length;
    const done = await Promise.allSettled(deallocations);
    if (done.some((d) => d.status === "rejected")) return this.isClosed ? "closed" : "dirty";
    return "clean";
  }

  /** Terminate, then close: the server ends the session (an open transaction rolls back). Settles once closed. */
  end(): Promise<void> {
    this.server.end();
    return this.ended;
  }

  /** Cut at once (a statement whose cancel went unanswered: the server or the network is gone). */
  cut(): void {
    this.destroy(lost());
  }

  /** An error when the session's client_encoding is no longer UTF-8 (the reset restores it). */
  private foreignEncoding(): GatewayError | undefined {
    if (this.encoding === "UTF8") return undefined;
    return gatewayError(SQLSTATE.featureNotSupported, `client_encoding cannot be changed: hbagate exchanges UTF-8 with the database, and the session was set to ${this.encoding}`, {
      hint: "Leave client_encoding alone; JSON is UTF-8.",
    });
  }

  /** A Close's exchange: the statement is gone from the server once its CloseComplete comes. */
  private closing(): Exchange {
    return { message: (m) => void (m.type === 0x33 /* 3 CloseComplete */ && this.namedOnServer--), ready: () => {}, fail: () => {} };
  }

  private send(parts: Uint8Array[], exchange: Exchange): void {
    if (this.closed) {
      exchange.fail(ended());
      return;
    }
    this.queue.push(exchange);
    // Everything sent in one turn of the event loop leaves in one write (a statement and the reset behind it).
    if (this.pending.length === 0) queueMicrotask(() => this.flush());
    this.pending.push(...parts);
  }

  private flush(): void {
    const parts = this.pending;
    this.pending = [];
    if (this.closed || parts.length === 0) return;
    this.server.write(parts.length === 1 ? parts[0]! : joinBytes(parts));
  }

  private data(chunk: Uint8Array): void {
    this.reader.push(chunk);
    try {
      for (let m = this.reader.next(); m && !this.closed; m = this.reader.next()) {
        const exchange = this.queue[0];
        if (m.type === 0x53 /* S ParameterStatus */) {
          const [name, value] = parameterStatus(m.body);
          if (name === "client_encoding") this.encoding = value.toUpperCase().replace(/[-_]/g, "");
        } else if (m.type === 0x5a /* Z */) {
          this.status = String.fromCharCode(m.body[0]!) as TransactionStatus;
          this.queue.shift();
          exchange?.ready();
        } else if (exchange) exchange.message(m);
        else if (m.type === 0x45) {
          // An error with nothing asked: the server ending the session (a FATAL); the close follows.
          this.destroy(serverError(m.body));
          return;
        }
      }
    } catch (err) {
      // A message announced larger than the bound: nothing of it is held, the connection is cut.
      const tooLarge = err instanceof GatewayError && err.code === SQLSTATE.programLimitExceeded;
      this.destroy(tooLarge ? Object.assign(new Error("the answer is larger than any response may be"), { code: ANSWER_TOO_LARGE }) : err instanceof Error ? err : new Error(String(err)));
    }
  }

  private destroy(err: Error): void {
    this.lose(err);
    this.server.destroy();
  }

  private lose(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = err ?? lost();
    const failure = err instanceof GatewayError || answerTooLarge(err) ? err! : lost(err);
    for (const exchange of this.queue.splice(0)) exchange.fail(failure);
  }
}

function rowDescription(body: Uint8Array): Column[] {
  const n = int16At(body, 0);
  const columns: Column[] = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const end = body.indexOf(0, at);
    const name = utf8.decode(body.subarray(at, end));
    at = end + 1;
    columns.push({ name, table: int32At(body, at), number: int16At(body, at + 4), type: int32At(body, at + 6), size: int16At(body, at + 10), modifier: int32At(body, at + 12) });
    at += 18;
  }
  return columns;
}

function dataRow(body: Uint8Array): Values {
  const n = int16At(body, 0);
  const values: (Uint8Array | null)[] = new Array(n);
  let at = 2;
  for (let i = 0; i < n; i++) {
    const length = int32At(body, at);
    at += 4;
    if (length < 0) values[i] = null;
    else {
      values[i] = body.subarray(at, at + length);
      at += length;
    }
  }
  return values;
}

/** "INSERT 0 1" -> INSERT, 1; "SELECT 3" -> SELECT, 3; "CREATE TABLE" -> CREATE TABLE, null. */
/** ParameterStatus: a setting's name and its new value. */
function parameterStatus(body: Uint8Array): [string, string] {
  const end = body.indexOf(0);
  return [utf8.decode(body.subarray(0, end)), utf8.decode(body.subarray(end + 1, body.indexOf(0, end + 1)))];
}

function commandTag(body: Uint8Array): { command: string; count: number | null } {
  const tag = utf8.decode(body.subarray(0, body.length - 1));
  const m = /^(.*?)(?: \d+)?(?: (\d+))$/.exec(tag);
  return m ? { command: m[1]!, count: Number(m[2]) } : { command: tag, count: null };
}

/**
 * A one-dimensional text[] as PostgreSQL prints it: {a,"b c","d\"e"} ->
 * [a, b c, d"e]. Elements are quoted when they hold a delimiter, a quote, a
 * backslash, a space or the word NULL; quoted, `\` escapes the next character.
 */
export function textArray(text: string): string[] {
  if (text.length < 2 || text[0] !== "{" || text[text.length - 1] !== "}") throw new Error(`not a one-dimensional array: ${text}`);
  const out: string[] = [];
  let i = 1;
  const end = text.length - 1;
  if (i === end) return out;
  for (;;) {
    let value = "";
    if (text[i] === '"') {
      for (i++; i < end && text[i] !== '"'; i++) {
        if (text[i] === "\\") i++;
        value += text[i];
      }
      i++; // the closing quote
    } else {
      for (; i < end && text[i] !== ","; i++) value += text[i];
    }
    out.push(value);
    if (i >= end) return out;
    i++; // the comma
  }
}
