// The hba decision's cost, in-process: microseconds per decision for a file
// of `n` lines whose matching line is the last.
import { memorySource } from "../lib/config/source.ts";
import { parseNumericHost } from "../lib/hba/address.ts";
import { loadHba } from "../lib/hba/load.ts";
import { matchHba } from "../lib/hba/match.ts";

/**
 * Microseconds per decision when the matching line is the last of `n`: the
 * median of batches of about 50 ms each, after a warm-up of its own, so a
 * collection or a recompilation in one batch does not become the figure (a
 * fixed count of 200 decisions at 10,000 rules once read 62 µs for 4).
 */
export async function hbaDecision(n: number): Promise<number> {
  const lines: string[] = [];
  for (let i = 0; i < n - 1; i++) lines.push(`host all all 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 md5`);
  lines.push("host all all 192.0.2.0/24 trust");
  const file = loadHba("/bench", memorySource({ "/bench": lines.join("\n") }));
  const facts = { transport: "host" as const, address: parseNumericHost("192.0.2.7")!, ssl: false, database: "db", user: "u", replication: false };
  const env = { isMember: () => false };
  const batch = async (): Promise<number> => {
    let calls = 0;
    const t = process.hrtime.bigint();
    const until = t + 50_000_000n;
    let now = t;
    while (now < until) {
      for (let i = 0; i < 100; i++) await matchHba(file.rules, facts, env);
      calls += 100;
      now = process.hrtime.bigint();
    }
    return Number(now - t) / 1000 / calls;
  };
  for (let i = 0; i < 4; i++) await batch();
  const batches: number[] = [];
  for (let i = 0; i < 9; i++) batches.push(await batch());
  return batches.sort((a, b) => a - b)[4]!;
}
