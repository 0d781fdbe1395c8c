// What one response may carry: rows and bytes, counted while rows stream in
// (so a runaway result is cancelled rather than buffered) and measured
// exactly once the response is built.
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";

/**
 * Limits on what one response may carry, shared by every statement of a
 * batch. Rows are counted as they arrive, so a runaway result is cancelled on
 * the server instead of being buffered whole.
 */
export interface ResponseLimits {
  readonly maxRows: number;
  readonly maxBytes: number;
  /**
   * Count the built response as it takes inside a JSON string, not as plain
   * UTF-8: on Lambda the body travels escaped in the payload the platform
   * limits, where every quote and backslash takes a byte more.
   */
  readonly asJsonString?: boolean;
}

/**
 * A row's JSON length as the limit counts it while rows stream in: exact but
 * for escapes in strings and keys, which only add. Serialising every row just
 * to measure it cost as much again as the response itself; the whole
 * response is measured exactly once it is built (responseWithinLimits).
 */
export function jsonLength(row: Record<string, unknown>): number {
  let n = 2;
  for (const key in row) {
    const v = row[key];
    n += key.length + 4;
    if (typeof v === "string") n += v.length + 2;
    else if (typeof v === "number") n += String(v).length;
    else if (typeof v === "boolean") n += v ? 4 : 5;
    else if (v === null) n += 4;
    else n += JSON.stringify(v)?.length ?? 4;
  }
  return n;
}

const bytesExceeded = (limits: ResponseLimits) =>
  gatewayError(SQLSTATE.configurationLimitExceeded, `the response exceeds the limit of ${limits.maxBytes} bytes`, {
    hint: "Select fewer columns or rows.",
  });

/** UTF-8 bytes of a string: 1 to 3 per UTF-16 unit, 4 per surrogate pair. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * UTF-8 bytes of a string once JSON.stringify has made a JSON string of it
 * (without the quotes around it): `"` and `\` escaped, \b \f \n \r \t, other
 * control characters and lone surrogates as \uXXXX.
 */
export function jsonStringLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) n += 2;
    else if (c < 0x20) n += c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6;
    else if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) n += 6;
    else n += 3;
  }
  return n;
}

/**
 * The response text, or 53400 when its bytes are over the limit. Streaming
 * counted characters before escaping, a lower bound: the built response is
 * measured exactly, scanning it only when it could be over (UTF-8 takes at
 * least one byte and at most three per UTF-16 unit; inside a JSON string, at
 * most six).
 */
export function responseWithinLimits(text: string, limits: ResponseLimits): string {
  if (text.length > limits.maxBytes) throw bytesExceeded(limits);
  if (limits.asJsonString) {
    if (text.length * 6 > limits.maxBytes && jsonStringLength(text) > limits.maxBytes) throw bytesExceeded(limits);
  } else if (text.length * 3 > limits.maxBytes && utf8Length(text) > limits.maxBytes) throw bytesExceeded(limits);
  return text;
}

export class Budget {
  rows = 0;
  bytes = 0;
  constructor(private readonly limits: ResponseLimits) {}
  /** undefined while within limits; the error to report once past them. */
  take(size: number): GatewayError | undefined {
    this.rows += 1;
    this.bytes += size + 1;
    if (this.rows > this.limits.maxRows) {
      return gatewayError(SQLSTATE.configurationLimitExceeded, `the result exceeds the limit of ${this.limits.maxRows} rows`, {
        hint: "Add a LIMIT, or page through the result.",
      });
    }
    if (this.bytes > this.limits.maxBytes) return bytesExceeded(this.limits);
    return undefined;
  }

  /** The error for an answer cut by the connection's own bound (upstream-socket.ts), past any response's size. */
  overBytes(cause: unknown): GatewayError {
    return new GatewayError({ ...bytesExceeded(this.limits).fields }, { cause });
  }
}
