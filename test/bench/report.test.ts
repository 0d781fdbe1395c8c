// The benchmark's arithmetic, on figures made up to tell right from wrong:
// ratios are taken within each round (never medians divided), targets are
// judged on the median, and a missed target says why from the run's figures.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { report, type Results, type Row } from "../../bench/report.ts";
import { summarizeProfile } from "../../bench/profile-summary.ts";

const row = (scenario: string, rounds: Record<string, number>[]): Row => ({ scenario, rounds });

function results(overrides: Partial<Results> = {}): Results {
  return {
    date: "2026-01-01T00:00:00.000Z",
    rounds: 3,
    seconds: 3,
    connections: 10,
    pinned: true,
    scenarios: [
      // Per round: gateway ÷ bridge 0.5, 1.5, 2 and ÷ floor 2, 0.5, 1 (median 1), where the
      // medians divided would give 300 ÷ 400 = 0.75.
      row("1 row", [
        { gateway: 100, naivePrepared: 200, naive: 100, direct: 400, floor: 50, gatewayCpu: 300, naivePreparedCpu: 150 },
        { gateway: 300, naivePrepared: 200, naive: 100, direct: 300, floor: 600, gatewayCpu: 310, naivePreparedCpu: 160 },
        { gateway: 400, naivePrepared: 200, naive: 100, direct: 100, floor: 400, gatewayCpu: 320, naivePreparedCpu: 170 },
      ]),
      row("100 rows", [
        { gateway: 90, naivePrepared: 100, naive: 80, direct: 100, floor: 500 },
        { gateway: 90, naivePrepared: 100, naive: 80, direct: 100, floor: 500 },
        { gateway: 90, naivePrepared: 100, naive: 80, direct: 100, floor: 500 },
      ]),
      row("10,000 rows", [
        { gateway: 7, naivePrepared: 10, naive: 8, direct: 10, floor: 100 },
        { gateway: 7, naivePrepared: 10, naive: 8, direct: 10, floor: 100 },
        { gateway: 7, naivePrepared: 10, naive: 8, direct: 10, floor: 100 },
      ]),
      row("5-statement batch", [{ gateway: 50, naivePrepared: 100, naive: 100, floor: 1000 }]),
    ],
    auth: [
      row("trust", [{ gateway: 1000, trust: 1000 }]),
      row("passthrough password, cache on", [{ gateway: 950, trust: 1000 }]),
      row("LDAP simple bind, cache on", [{ gateway: 800, trust: 1000 }]),
    ],
    c1: row("c1 latency", [{ gatewayP50: 0.9, naivePreparedP50: 0.8, gatewayP99: 2, naivePreparedP99: 2 }]),
    unpinned: row("1 row, unpinned", []),
    profile: [
      { bucket: "idle", usPerRequest: 100, share: 0.5 },
      { bucket: "own code (gateway lib/, bridge bench/servers.ts)", usPerRequest: 40, share: 0.2 },
      { bucket: "postgres.js", usPerRequest: 30, share: 0.15 },
    ],
    bridgeProfile: [
      { bucket: "idle", usPerRequest: 90, share: 0.6 },
      { bucket: "own code (gateway lib/, bridge bench/servers.ts)", usPerRequest: 2, share: 0.01 },
      { bucket: "postgres.js", usPerRequest: 31, share: 0.2 },
    ],
    hba: { "10": 1, "1000": 2, "10000": 3 },
    own: { identity: 1, parse: 1, hba: 1, verifyTrust: 0.5, verifyPasswordCached: 5.5, pool: 1, response: 1 },
    bundleKiB: 1000,
    importMs: [300, 310, 320],
    peakKiB: 200 * 1024,
    ldap: true,
    ...overrides,
  };
}

const cells = (md: string, first: string) => md.split("\n").find((l) => l.startsWith(`| ${first} |`))?.split("|").map((c) => c.trim());

describe("benchmark report", () => {
  test("ratios are taken within each round, then summarised as median (min–max)", () => {
    const md = report(results());
    const oneRow = cells(md, "1 row")!;
    assert.equal(oneRow[2], "300 (100–400)", "gateway req/s");
    assert.equal(oneRow[4], "1.50 (0.50–2.00)", "÷ naive prepared");
    assert.equal(oneRow[5], "1.00 (0.25–4.00)", "÷ direct driver, per round");
    assert.equal(oneRow[6], "1.00 (0.50–2.00)", "÷ HTTP floor, per round (not 300 ÷ 400)");
  });

  test("each target is judged on its median, and only a missed one is explained", () => {
    const md = report(results());
    assert.equal(cells(md, "1 row: gateway ÷ prepared naive bridge ≥ 1.2")![3], "yes");
    assert.equal(cells(md, "1 row: gateway ÷ direct driver ≥ 0.85")![3], "yes");
    assert.equal(cells(md, "1 row: Node CPU per request, gateway ÷ prepared bridge ≤ 1")![3], "**no**");
    assert.equal(cells(md, "100 rows: gateway ÷ direct driver ≥ 0.8")![3], "yes");
    assert.equal(cells(md, "10,000 rows: gateway ÷ direct driver ≥ 0.8")![3], "**no**");
    assert.equal(cells(md, "passthrough password, cache on: ÷ trust ≥ 0.9")![3], "yes");
    assert.equal(cells(md, "LDAP simple bind, cache on: ÷ trust ≥ 0.9")![3], "**no**");
    assert.equal(cells(md, "c1 p50: gateway − prepared bridge ≤ 0.3 ms")![2], "0.10 (0.10–0.10) ms");

    const why = md.slice(md.indexOf("Why each missed target is missed"));
    assert.ok(why.includes("- 10,000 rows: gateway ÷ direct driver ≥ 0.8:"));
    assert.ok(why.includes("- LDAP simple bind, cache on: ÷ trust ≥ 0.9:"));
    assert.ok(!why.includes("- 100 rows: gateway ÷ direct driver"), "a met target is not explained");
    assert.ok(!why.includes("- passthrough password"), "a met target is not explained");
    assert.equal(why.split("\n").filter((l) => l.startsWith("- ")).length, 3, "the three missed: CPU, LDAP, 10,000 rows");
    // From the run's own figures: the bridge reaches 1.00 of the direct driver on 10,000 rows,
    // so meeting 0.8 takes 0.8 of the bridge; the gateway's CPU beyond the bridge is its own code.
    assert.match(why, /10,000 rows: gateway ÷ direct driver ≥ 0\.8: .*reaches 1\.00 \(1\.00–1\.00\) of the direct driver.*0\.80 \(0\.80–0\.80\)× that bridge/);
    assert.match(why, /Node CPU per request: 310 \(300–320\) µs against the bridge's 160 \(150–170\) µs/);
    assert.match(why, /own code \(gateway lib\/, bridge bench\/servers\.ts\) \+38 µs/);
    assert.doesNotMatch(why, /postgres\.js \+/, "a bucket where the gateway spends less is not listed");
    // 5.0 µs more for a cached password at 310 µs per request would predict 0.98 of trust.
    assert.match(why, /LDAP simple bind, cache on: ÷ trust ≥ 0\.9: .*5\.0 µs more than trust.*predict 0\.98 of trust/);
  });

  test("each method's CPU per request, Node and PostgreSQL, is set beside trust's from the same rounds, and explains a missed target", () => {
    // Per round, trust's cost ÷ the method's: (150 + 50) ÷ (180 + 70) = 0.80, (160 + 40) ÷ (160 + 40) = 1.00
    // and (155 + 45) ÷ (170 + 55) = 0.89.
    const r = results({
      auth: [
        row("trust", [
          { gateway: 1000, trust: 1000, cpu: 150, pg: 50, trustCpu: 150, trustPg: 50 },
          { gateway: 1000, trust: 1000, cpu: 160, pg: 40, trustCpu: 160, trustPg: 40 },
          { gateway: 1000, trust: 1000, cpu: 155, pg: 45, trustCpu: 155, trustPg: 45 },
        ]),
        row("bearer token (oauth), cache on", [
          { gateway: 800, trust: 1000, cpu: 180, pg: 70, trustCpu: 150, trustPg: 50 },
          { gateway: 850, trust: 1000, cpu: 160, pg: 40, trustCpu: 160, trustPg: 40 },
          { gateway: 900, trust: 1000, cpu: 170, pg: 55, trustCpu: 155, trustPg: 45 },
        ]),
      ],
    });
    const md = report(r);
    const bearer = cells(md, "bearer token (oauth), cache on")!;
    assert.equal(bearer[3], "0.85 (0.80–0.90)");
    assert.equal(bearer[4], "170 (160–180) + 55 (40–70)");
    assert.equal(bearer[5], "0.89 (0.80–1.00)");
    assert.equal(cells(md, "trust")![5], "1.00");
    const why = md.slice(md.indexOf("Why each missed target is missed"));
    assert.match(why, /bearer token \(oauth\), cache on: ÷ trust ≥ 0\.9: each request cost .* 225 \(200–250\) µs .* against trust's 200 \(200–200\) µs .* is 0\.89 \(0\.80–1\.00\), and the rounds measured 0\.85 \(0\.80–0\.90\)/);
    // A run recorded before these figures existed shows none.
    assert.equal(cells(report(results()), "LDAP simple bind, cache on")![4], "—");
  });

  test("every missed target is explained, whichever it is", () => {
    const r = results({ hba: { "10": 1, "1000": 30, "10000": 60 }, c1: row("c1 latency", [{ gatewayP50: 1.9, naivePreparedP50: 0.8, gatewayP99: 5, naivePreparedP99: 4 }]) });
    const why = report(r).split("Why each missed target is missed")[1]!;
    const lines = why.split("\n").filter((l) => l.startsWith("- "));
    assert.ok(lines.some((l) => l.startsWith("- c1 p50")));
    assert.ok(lines.some((l) => l.startsWith("- hba decision at 10,000 rules < 20 µs")));
    for (const l of lines) assert.match(l, /: \S.{20,}$/, `no explanation: ${l}`);
    assert.match(why, /gateway's p50 was 1\.90 ms and the bridge's 0\.80 ms/);
    assert.match(why, /10,000 rules 60\.00 µs/);
  });

  test("non-200 responses put a warning above everything", () => {
    const r = results();
    const bad = { ...r, scenarios: [{ ...r.scenarios[0]!, rounds: r.scenarios[0]!.rounds.map((x, i) => (i === 0 ? { ...x, bad: 3 } : x)) }, ...r.scenarios.slice(1)] };
    assert.match(report(bad).split("\n")[0]!, /^\*\*3 responses were not 200/);
    assert.doesNotMatch(report(r), /were not 200/);
  });
});

describe("CPU profile summary", () => {
  test("self time inside the window, per request, by bucket", () => {
    const dir = mkdtempSync(join(tmpdir(), "hbagate-profile-"));
    const file = join(dir, "p.cpuprofile");
    const frame = (functionName: string, url: string) => ({ functionName, url, scriptId: "0", lineNumber: 0, columnNumber: 0 });
    writeFileSync(
      file,
      JSON.stringify({
        nodes: [
          { id: 1, callFrame: frame("(root)", "") },
          { id: 2, callFrame: frame("(idle)", "") },
          { id: 3, callFrame: frame("use", "file:///app/lib/upstream/pools.ts") },
          { id: 4, callFrame: frame("handle", "file:///app/node_modules/postgres/src/query.js") },
          { id: 5, callFrame: frame("writev", "") },
          { id: 6, callFrame: frame("x", "file:///app/node_modules/other/lib/x.js") },
        ],
        // Each sample ends timeDeltas[i] µs after the one before; the window is 1,000–2,000 µs.
        samples: [2, 3, 3, 4, 5, 6],
        timeDeltas: [900, 200, 200, 200, 200, 200],
      }),
    );
    const s = summarizeProfile(file, { fromMs: 1, toMs: 2 }, 2);
    const by = Object.fromEntries(s.map((b) => [b.bucket, b.usPerRequest]));
    // Inside the window: lib 400, postgres.js 200, writev 200, other 200 µs, over 2 requests.
    assert.equal(by["own code (gateway lib/, bridge bench/servers.ts)"], 200);
    assert.equal(by["postgres.js"], 100);
    assert.equal(by["socket writes (syscalls)"], 100);
    assert.equal(by["other (native, program)"], 100, "node_modules code outside the named libraries is not the gateway's");
    assert.equal(by["idle"], undefined, "the sample before the window is left out");
    assert.equal(s[0]!.bucket, "own code (gateway lib/, bridge bench/servers.ts)", "largest first");
    assert.ok(Math.abs(s.reduce((n, b) => n + b.share, 0) - 1) < 1e-9);
  });
});
