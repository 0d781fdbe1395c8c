// The host's own view of names and interfaces, for hba host-name, samehost and
// samenet rules. Node only: this is the one place the matcher's environment
// touches the operating system (getnameinfo/getaddrinfo, like PostgreSQL).
import { lookup, lookupService } from "node:dns/promises";
import { networkInterfaces } from "node:os";
import { formatAddress, parseNumericHost, type IpAddress } from "../hba/address.ts";
import type { InterfaceAddress, MatchEnvironment } from "../hba/match.ts";

export async function reverseLookup(address: IpAddress): Promise<string | undefined> {
  try {
    const { hostname } = await lookupService(formatAddress(address), 0);
    return hostname;
  } catch {
    return undefined;
  }
}

export async function forwardLookup(name: string): Promise<readonly IpAddress[]> {
  try {
    const found = await lookup(name, { all: true, verbatim: true });
    return found.flatMap((f) => parseNumericHost(f.address) ?? []);
  } catch {
    return [];
  }
}

export function systemInterfaces(): readonly InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      const address = parseNumericHost(i.address);
      const netmask = parseNumericHost(i.netmask);
      if (address && netmask) out.push({ address, netmask });
    }
  }
  return out;
}

export const systemHost: Required<Omit<MatchEnvironment, "isMember">> = {
  reverseLookup,
  forwardLookup,
  interfaces: systemInterfaces,
};
