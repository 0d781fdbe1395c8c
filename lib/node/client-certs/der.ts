// Just enough DER (X.690) to read a certificate revocation list: Node's
// crypto reads certificates (X509Certificate) but has no CRL type. Every
// length is checked against its parent; anything malformed throws.

export interface Tlv {
  readonly tag: number;
  /** The whole element, header included. */
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export class DerError extends Error {}

/** The element at `pos`, which must end by `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit = buf.length): Tlv {
  if (pos + 2 > limit) throw new DerError("truncated element");
  const tag = buf[pos]!;
  // High tag numbers (0x1f) never occur in a CRL.
  if ((tag & 0x1f) === 0x1f) throw new DerError("unsupported tag");
  let at = pos + 1;
  let length = buf[at++]!;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4) throw new DerError("unsupported length");
    if (at + bytes > limit) throw new DerError("truncated length");
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + buf[at++]!;
  }
  const end = at + length;
  if (end > limit) throw new DerError("element longer than its container");
  return { tag, start: pos, contentStart: at, end };
}

/** The elements inside a constructed one. */
export function childrenOf(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.contentStart; pos < parent.end; ) {
    const t = readTlv(buf, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

export const TAG = { integer: 0x02, bitString: 0x03, oid: 0x06, utcTime: 0x17, generalizedTime: 0x18, sequence: 0x30, context0: 0xa0 } as const;

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`expected ${what}`);
  return t;
}

/** An OBJECT IDENTIFIER in dotted form. */
export function oidOf(buf: Uint8Array, t: Tlv): string {
  const bytes = buf.subarray(t.contentStart, t.end);
  if (bytes.length === 0) throw new DerError("empty object identifier");
  const parts: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (parts.length === 0) parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

/** A UTCTime or GeneralizedTime (always UTC, "Z", in DER) as milliseconds. */
export function timeOf(buf: Uint8Array, t: Tlv): number {
  const text = new TextDecoder("latin1").decode(buf.subarray(t.contentStart, t.end));
  const m = t.tag === TAG.utcTime ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : t.tag === TAG.generalizedTime ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
  if (!m) throw new DerError(`invalid time "${text}"`);
  let year = Number(m[1]);
  // RFC 5280 4.1.2.5.1: UTCTime years 50-99 are 19xx.
  if (t.tag === TAG.utcTime) year += year >= 50 ? 1900 : 2000;
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** An INTEGER's magnitude as upper-case hex without leading zeros (how serial numbers are compared). */
export function serialHex(buf: Uint8Array, t: Tlv): string {
  return normalizeSerial(Buffer.from(buf.subarray(t.contentStart, t.end)).toString("hex"));
}

export function normalizeSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, "");
}
