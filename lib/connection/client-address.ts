// Client addresses as hba compares them, parsed once per distinct text: every
// request names its peer (and a proxy's X-Forwarded-For hops), and callers
// come back from the same few addresses, so parsing each time is wasted work.
import { parseClientAddress, unmapIpv4, type IpAddress } from "../hba/address.ts";

const MAX_REMEMBERED = 4096;
const remembered = new Map<string, IpAddress | null>();

/** The address in `text` with IPv4-mapped IPv6 unmapped, or undefined if it is not one. Shared: never mutate it. */
export function clientAddress(text: string): IpAddress | undefined {
  let a = remembered.get(text);
  if (a === undefined) {
    const parsed = parseClientAddress(text);
    a = parsed ? unmapIpv4(parsed) : null;
    // A full table is simply emptied: a flood of new addresses costs parsing, never memory.
    if (remembered.size >= MAX_REMEMBERED) remembered.clear();
    remembered.set(text, a);
  }
  return a ?? undefined;
}

/** 127.0.0.0/8 or ::1 (IPv4-mapped addresses are unmapped by clientAddress). */
export function isLoopback(a: IpAddress): boolean {
  return a.family === 4 ? a.bytes[0] === 127 : a.bytes.every((b, i) => b === (i === 15 ? 1 : 0));
}
