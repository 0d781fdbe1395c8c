// An index over a rules file, so a decision does not walk thousands of lines
// whose address cannot match. First-match semantics stay exact: the index
// only proposes candidates, in file order, and every candidate is checked in
// full by the matcher.
//
// CIDR lines are bucketed by their mask and masked network: for a client
// address, each distinct mask gives one lookup. Lines that any address may
// match (all, samehost, samenet, host names) and local lines are always
// candidates.
import type { IpAddress } from "./address.ts";
import type { HbaRule } from "./rule.ts";

interface MaskBucket {
  readonly family: 4 | 6;
  readonly mask: Uint8Array;
  /** masked network (hex) -> rule positions, ascending */
  readonly networks: Map<string, number[]>;
}

export interface RuleIndex {
  /** Positions of the rules a connection could match, ascending. */
  candidates(transport: "local" | "host", address: IpAddress | undefined): readonly number[];
}

function maskedKey(bytes: Uint8Array, mask: Uint8Array): string {
  let key = "";
  for (let i = 0; i < mask.length; i++) key += ((bytes[i]! & mask[i]!) + 256).toString(16).slice(1);
  return key;
}

/** Merge ascending lists into one ascending list without duplicates. */
function merge(lists: readonly (readonly number[])[]): number[] {
  const out: number[] = [];
  const pos = lists.map(() => 0);
  for (;;) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      const v = lists[i]![pos[i]!];
      if (v !== undefined && (best < 0 || v < lists[best]![pos[best]!]!)) best = i;
    }
    if (best < 0) return out;
    const v = lists[best]![pos[best]!]!;
    if (out[out.length - 1] !== v) out.push(v);
    pos[best]!++;
  }
}

export function buildRuleIndex(rules: readonly HbaRule[]): RuleIndex {
  const local: number[] = [];
  const anyAddress: number[] = [];
  const buckets = new Map<string, MaskBucket>();
  rules.forEach((rule, i) => {
    const a = rule.address;
    if (a === null) return local.push(i);
    if (a.kind !== "cidr") return anyAddress.push(i);
    const maskHex = `${a.mask.family}/${maskedKey(a.mask.bytes, new Uint8Array(a.mask.bytes.length).fill(255))}`;
    let bucket = buckets.get(maskHex);
    if (!bucket) {
      bucket = { family: a.mask.family, mask: a.mask.bytes, networks: new Map() };
      buckets.set(maskHex, bucket);
    }
    const key = maskedKey(a.network.bytes, a.mask.bytes);
    const list = bucket.networks.get(key);
    if (list) list.push(i);
    else bucket.networks.set(key, [i]);
  });
  const allBuckets = [...buckets.values()];
  return {
    candidates(transport, address) {
      if (transport === "local") return local;
      const lists: (readonly number[])[] = [anyAddress];
      if (address) {
        for (const b of allBuckets) {
          if (b.family !== address.family) continue;
          const hit = b.networks.get(maskedKey(address.bytes, b.mask));
          if (hit) lists.push(hit);
        }
      }
      return lists.length === 1 ? anyAddress : merge(lists);
    },
  };
}
