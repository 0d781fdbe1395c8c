// The hba decision's cost, in-process: microseconds per decision for a file
// of `n` lines whose matching line is the last.
import { memorySource } from "../lib/config/source.ts";
import { parseNumericHost } from "../lib/hba/address.ts";
import { loadHba } from "../lib/hba/load.ts";
import { matchHba } from "../lib/hba/match.ts";
import { microsPerCall } from "./per-call.ts";

/** Microseconds per decision when the matching line is the last of `n`. */
export async function hbaDecision(n: number): Promise<number> {
  const lines: string[] = [];
  for (let i = 0; i < n - 1; i++) lines.push(`host all all 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 md5`);
  lines.push("host all all 192.0.2.0/24 trust");
  const file = loadHba("/bench", memorySource({ "/bench": lines.join("\n") }));
  const facts = { transport: "host" as const, address: parseNumericHost("192.0.2.7")!, ssl: false, database: "db", user: "u", replication: false };
  const env = { isMember: () => false };
  return microsPerCall(() => matchHba(file.rules, facts, env));
}
