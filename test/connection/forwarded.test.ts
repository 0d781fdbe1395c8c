import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { forwardedPeer, NO_TRUSTED_PROXIES, parseTrustedProxies } from "../../lib/connection/forwarded.ts";
import { parseNumericHost } from "../../lib/hba/address.ts";

const headers = (h: Record<string, string>) => (name: string) => h[name];
const socket = (address: string, encrypted = false) => ({ transport: "host" as const, address, encrypted });

describe("client address behind proxies", () => {
  const trusted = parseTrustedProxies("10.0.0.0/8, 192.0.2.7, fd00::/8");

  test("an untrusted peer's forwarding headers are ignored", () => {
    const p = forwardedPeer(socket("203.0.113.9"), headers({ "x-forwarded-for": "10.9.9.9", "x-forwarded-proto": "https" }), trusted);
    assert.deepEqual(p, socket("203.0.113.9"));
  });

  test("no trusted proxies configured: headers never count", () => {
    const p = forwardedPeer(socket("10.1.1.1"), headers({ "x-forwarded-for": "198.51.100.1" }), NO_TRUSTED_PROXIES);
    assert.equal(p.address, "10.1.1.1");
  });

  test("behind a trusted proxy the first untrusted hop from the right is the client", () => {
    const p = forwardedPeer(socket("10.1.1.1"), headers({ "x-forwarded-for": "6.6.6.6, 198.51.100.1, 192.0.2.7" }), trusted);
    assert.equal(p.address, "198.51.100.1");
  });

  test("a trusted proxy's X-Forwarded-Proto decides encryption", () => {
    assert.equal(forwardedPeer(socket("10.1.1.1"), headers({ "x-forwarded-proto": "https" }), trusted).encrypted, true);
    assert.equal(forwardedPeer(socket("10.1.1.1", true), headers({ "x-forwarded-proto": "http" }), trusted).encrypted, false);
    assert.equal(forwardedPeer(socket("10.1.1.1", true), headers({}), trusted).encrypted, true);
  });

  test("IPv4-mapped peers and bracketed IPv6 hops", () => {
    assert.equal(forwardedPeer(socket("::ffff:10.1.1.1"), headers({ "x-forwarded-for": "[2001:db8::1]" }), trusted).address, "2001:db8::1");
    assert.equal(forwardedPeer(socket("fd00::5"), headers({ "x-forwarded-for": "198.51.100.2" }), trusted).address, "198.51.100.2");
  });

  test("a chain of only trusted hops ends at the leftmost", () => {
    assert.equal(forwardedPeer(socket("10.1.1.1"), headers({ "x-forwarded-for": "10.2.2.2, 10.3.3.3" }), trusted).address, "10.2.2.2");
  });

  test("a malformed hop is refused, not guessed", () => {
    assert.throws(() => forwardedPeer(socket("10.1.1.1"), headers({ "x-forwarded-for": "not-an-ip" }), trusted), (e: { code?: string }) => e.code === "08P01");
  });

  test("bad trusted-proxy settings name the entry", () => {
    assert.throws(() => parseTrustedProxies("10.0.0.0/8, nonsense"), /"nonsense"/);
    assert.throws(() => parseTrustedProxies("10.0.0.0/40"), /"10.0.0.0\/40"/);
    // inet_aton's shorthands are no way to name a proxy.
    for (const bad of ["10.0.0", "10.1/8", "0x0a.0.0.1"]) assert.throws(() => parseTrustedProxies(bad), new RegExp(`"${bad.replace(".", "\\.")}`), bad);
    // An IPv4-mapped range is its IPv4 range.
    const mapped = parseTrustedProxies("::ffff:172.16.0.0/108");
    assert.equal(mapped.contains(parseNumericHost("172.16.5.5")!), true);
    assert.equal(mapped.contains(parseNumericHost("172.32.0.1")!), false);
  });
});
