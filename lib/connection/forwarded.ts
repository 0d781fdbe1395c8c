// X-Forwarded-For / X-Forwarded-Proto, believed only from trusted proxies.
// Walking the X-Forwarded-For chain from the right, trusted proxies are
// skipped and the first untrusted hop is the client; a caller outside the
// trusted list cannot choose the address its rules see.
import ipaddr from "ipaddr.js";
import { unmapIpv4, type IpAddress } from "../hba/address.ts";
import { clientAddress } from "./client-address.ts";
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { PeerCertificate, PeerInfo } from "./caller.ts";

export interface TrustedProxies {
  contains(address: IpAddress): boolean;
  /** How many addresses or ranges are listed. */
  readonly count: number;
}

/** Parse "10.0.0.0/8, 192.0.2.7, fd00::/8" (ranges as ipaddr.js reads them); throws with the bad entry named. */
export function parseTrustedProxies(text: string): TrustedProxies {
  const ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];
  for (const entry of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    try {
      // inet_aton's shorthands ("10.1") are no way to name a proxy: four decimal parts only.
      const host = entry.split("/")[0]!;
      if (!host.includes(":") && !ipaddr.IPv4.isValidFourPartDecimal(host)) throw new Error("not an address");
      const range = entry.includes("/") ? ipaddr.parseCIDR(entry) : ([ipaddr.parse(entry), entry.includes(":") ? 128 : 32] as [ipaddr.IPv4 | ipaddr.IPv6, number]);
      // An IPv4-mapped range is its IPv4 range, as addresses are compared unmapped.
      const [network, bits] = range;
      ranges.push(network.kind() === "ipv6" && (network as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96 ? [(network as ipaddr.IPv6).toIPv4Address(), bits - 96] : range);
    } catch {
      throw new Error(`invalid trusted proxy "${entry}": expected an IP address or CIDR range`);
    }
  }
  // None (the default): asked on every request, answered without converting the address.
  if (ranges.length === 0) return { count: 0, contains: () => false };
  return {
    count: ranges.length,
    contains: (a) => {
      const address = ipaddr.fromByteArray([...unmapIpv4(a).bytes]);
      return ranges.some(([network, bits]) => network.kind() === address.kind() && address.match(network as never, bits));
    },
  };
}

export const NO_TRUSTED_PROXIES: TrustedProxies = { contains: () => false, count: 0 };

/**
 * A header in which trusted proxies forward the client certificate they
 * received, and how its value is read and verified (against the same CA as
 * the TLS listener's). From anyone else the header is ignored.
 */
export interface ForwardedCertificate {
  readonly header: string;
  verify(value: string): PeerCertificate;
}

/**
 * The host names a trusted proxy says its client used (X-Forwarded-Host, every
 * entry), or undefined when the header is absent or the peer is not a
 * trusted proxy (then it is anyone's say and the Host header counts).
 */
export function forwardedHosts(
  socket: PeerInfo,
  header: (name: string) => string | undefined,
  trusted: TrustedProxies,
): readonly string[] | undefined {
  const value = header("x-forwarded-host");
  if (value === undefined || socket.transport !== "host" || socket.address === undefined) return undefined;
  const direct = clientAddress(socket.address);
  if (!direct || !trusted.contains(direct)) return undefined;
  return value.split(",");
}

/**
 * The caller as hba sees it: the socket peer, or what a trusted proxy says
 * about its own client — its address, whether it used TLS and, with
 * `certificate`, the certificate it presented. Behind a trusted proxy the
 * socket's own client certificate is the proxy's, never the caller's.
 */
export function forwardedPeer(
  socket: PeerInfo,
  header: (name: string) => string | undefined,
  trusted: TrustedProxies,
  certificate?: ForwardedCertificate,
): PeerInfo {
  if (socket.transport !== "host" || socket.address === undefined) return socket;
  const direct = clientAddress(socket.address);
  if (!direct || !trusted.contains(direct)) return socket;

  let address = socket.address;
  const chain = (header("x-forwarded-for") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = clientAddress(chain[i]!.replace(/^\[(.*)\]$/, "$1"));
    if (!hop) throw gatewayError(SQLSTATE.protocolViolation, `invalid X-Forwarded-For entry "${chain[i]}"`);
    address = chain[i]!.replace(/^\[(.*)\]$/, "$1");
    if (!trusted.contains(hop)) break;
  }
  // The nearest proxy's view of the connection it received.
  const proto = (header("x-forwarded-proto") ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean).at(-1);
  // A proxy forwarding a WebSocket upgrade may name its scheme (wss) rather than HTTP's (https).
  const forwarded = certificate === undefined ? undefined : header(certificate.header);
  return {
    transport: "host",
    address,
    encrypted: proto === undefined ? socket.encrypted : proto === "https" || proto === "wss",
    ...(forwarded === undefined ? {} : { certificate: certificate!.verify(forwarded) }),
  };
}
