// Numeric addresses as PostgreSQL reads them (getaddrinfo with AI_NUMERICHOST:
// inet_aton forms for IPv4, so "010.0.0.1" is 8.0.0.1) and prints them
// (getnameinfo/inet_ntop), compiled to byte arrays for matching.
import ipaddr from "ipaddr.js";

export type Family = 4 | 6;

export interface IpAddress {
  readonly family: Family;
  readonly bytes: Uint8Array;
}

/** A numeric host, or undefined when the text is not one (PostgreSQL then treats it as a host name). */
export function parseNumericHost(text: string): IpAddress | undefined {
  // A zone ("fe80::1%eth0") is accepted and ignored, as PostgreSQL's rule matching ignores it.
  const bare = text.includes(":") ? text.replace(/%[^%]*$/, "") : text;
  if (bare === "" || /\s/.test(bare)) return undefined;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(bare.includes(":") ? hexTail(bare) : bare);
  } catch {
    return undefined;
  }
  const bytes = Uint8Array.from(parsed.toByteArray());
  return { family: parsed.kind() === "ipv4" ? 4 : 6, bytes };
}

/**
 * ipaddr.js reads "::1.2.3.4" as the IPv4-mapped ::ffff:1.2.3.4; inet_pton keeps
 * it IPv4-compatible. Rewrite a dotted tail (inet_pton4 rules: four decimal
 * parts, no leading zeros) as two hex groups first.
 */
function hexTail(text: string): string {
  const m = /^(.*:)((?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2}))$/.exec(text);
  if (!m) return text;
  const b = m[2]!.split(".").map(Number);
  if (b.some((x) => x > 255)) return "invalid";
  return `${m[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
}

/** A client address as the gateway sees it; IPv4-mapped IPv6 stays IPv6 here (the connection layer decides). */
export function parseClientAddress(text: string): IpAddress | undefined {
  const a = parseNumericHost(text);
  if (!a) return undefined;
  // Clients never use inet_aton shorthand; insist on the canonical forms.
  if (a.family === 4 && !ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  return a;
}

/** pg_sockaddr_cidr_mask: strtol-style bit count, in range for the family. */
export function cidrMask(bitsText: string, family: Family): Uint8Array | undefined {
  if (!/^[ \t\n\v\f\r]*[+-]?\d+$/.test(bitsText)) return undefined;
  const bits = Number(bitsText.trim());
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return undefined;
  const mask = new Uint8Array(max / 8);
  for (let i = 0; i < mask.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    mask[i] = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
  }
  return mask;
}

/** pg_range_sockaddr: both sides masked, same family only (0.0.0.0/0 never matches IPv6). */
export function inRange(client: IpAddress, network: IpAddress, mask: Uint8Array): boolean {
  if (client.family !== network.family) return false;
  for (let i = 0; i < mask.length; i++) {
    if (((client.bytes[i]! ^ network.bytes[i]!) & mask[i]!) !== 0) return false;
  }
  return true;
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.bytes.every((v, i) => v === b.bytes[i]);
}

/** inet_ntop, glibc flavour: longest zero run compressed, IPv4-mapped and -compatible tails dotted. */
export function formatAddress(a: IpAddress): string {
  const b = a.bytes;
  if (a.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestStart = -1;
  const dotted = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  if (bestStart === 0 && (bestLen === 6 || (bestLen === 7 && words[7] !== 1) || (bestLen === 5 && words[5] === 0xffff))) {
    return bestLen === 5 ? `::ffff:${dotted}` : `::${dotted}`;
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (out !== "" && !out.endsWith(":")) out += ":";
    out += words[i]!.toString(16);
  }
  return out;
}

/** IPv4 clients that arrive as IPv4-mapped IPv6 (::ffff:a.b.c.d) are IPv4 for hba purposes. */
export function unmapIpv4(a: IpAddress): IpAddress {
  if (a.family !== 6) return a;
  const b = a.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return a;
  if (b[10] !== 0xff || b[11] !== 0xff) return a;
  return { family: 4, bytes: b.slice(12) };
}
