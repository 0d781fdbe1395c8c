// The rule index proposes candidates; the decision must equal a plain
// first-match walk over every line, for any rules and any client address.
// Files of up to 16 lines are walked without the index, so lengths here run
// well past that (size "max": fast-check would otherwise favour short ones).
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { memorySource } from "../../lib/config/source.ts";
import { formatAddress, inRange, type IpAddress } from "../../lib/hba/address.ts";
import { loadHba } from "../../lib/hba/load.ts";
import { matchHba } from "../../lib/hba/match.ts";
import type { HbaRule } from "../../lib/hba/rule.ts";

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => ({ family: 4 as const, bytes: Uint8Array.from(b) }));
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => ({ family: 6 as const, bytes: Uint8Array.from(b) }));
// Few distinct values, so rules and clients actually meet.
const small4 = fc.tuple(fc.constantFrom(10, 192), fc.nat(3), fc.nat(3), fc.nat(3)).map((b) => ({ family: 4 as const, bytes: Uint8Array.from(b) }));
const address: fc.Arbitrary<IpAddress> = fc.oneof(small4, small4, v4, v6);

const line = fc.oneof(
  fc.tuple(address, fc.nat(32)).map(([a, bits]) => `host all all ${formatAddress(a)}/${a.family === 4 ? bits : bits * 4} trust`),
  fc.tuple(small4, fc.constantFrom("255.255.0.0", "255.0.255.0", "0.0.0.0", "255.255.255.255")).map(([a, m]) => `host all all ${formatAddress(a)} ${m} md5`),
  fc.constantFrom("host all all all reject", "hostssl all all 10.0.0.0/8 md5", "hostnossl all all 192.0.0.0/8 trust", "host all all 0.0.0.0/0 password", "host all all ::/0 password", "local all all trust", "host all all samehost trust"),
);

/** The plain walk: every line, in order, same checks. */
function reference(rules: readonly HbaRule[], client: IpAddress, ssl: boolean): HbaRule | null {
  for (const r of rules) {
    if (r.type === "local" || r.type === "hostgssenc") continue;
    if (ssl ? r.type === "hostnossl" : r.type === "hostssl") continue;
    const a = r.address!;
    if (a.kind === "cidr" ? !inRange(client, a.network, a.mask.bytes) : a.kind !== "all") continue;
    return r;
  }
  return null;
}

test("indexed first match equals the plain walk", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 60, size: "max" }), fc.array(fc.tuple(address, fc.boolean()), { minLength: 1, maxLength: 10 }), async (lines, clients) => {
      const file = loadHba("/r", memorySource({ "/r": lines.join("\n") }));
      assert.deepEqual(file.errors, []);
      for (const [client, ssl] of clients) {
        const { rule } = await matchHba(file.rules, { transport: "host", address: client, ssl, database: "d", user: "u", replication: false }, { isMember: () => false, interfaces: () => [] });
        assert.equal(rule?.line ?? null, reference(file.rules, client, ssl)?.line ?? null, `${formatAddress(client)} ssl=${ssl}\n${lines.join("\n")}`);
      }
    }),
    { numRuns: 300, seed: 11 },
  );
});
