// Where a --cpu-prof profile's time went, in buckets a reader can act on:
// socket writes (the syscalls every server here pays), the gateway's own
// code, the driver, the HTTP stack, garbage collection, idle. The same buckets
// for the gateway and the bridge, so the two can be set side by side.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A stretch of the profile, in milliseconds since the profiled process started. */
export interface Window {
  readonly fromMs: number;
  readonly toMs: number;
}

const BUCKETS: readonly [string, (fn: string, url: string) => boolean][] = [
  ["idle", (fn) => fn === "(idle)"],
  ["socket writes (syscalls)", (fn) => fn === "writev" || fn === "writeBuffer" || fn === "writeUtf8String"],
  ["garbage collection", (fn) => fn === "(garbage collector)"],
  // The server's own code: the gateway's lib/, or the bridge's few lines.
  ["own code (gateway lib/, bridge bench/servers.ts)", (_, url) => !url.includes("node_modules") && (url.includes("/lib/") || url.includes("/bench/servers.ts"))],
  ["postgres.js", (_, url) => url.includes("node_modules/postgres/")],
  ["Hono and @hono/node-server", (_, url) => url.includes("node_modules/hono/") || url.includes("node_modules/@hono/")],
  ["zod", (_, url) => url.includes("node_modules/zod/")],
  ["Node's HTTP, streams and other internals", (_, url) => url.startsWith("node:")],
];

/**
 * Self time per bucket within `window` (start-up and warm-up left out), in
 * microseconds per request (`requests` served in the window) and as a share.
 */
export function summarizeProfile(path: string, window: Window, requests: number): { bucket: string; usPerRequest: number; share: number }[] {
  const p = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let total = 0;
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!)!;
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (at < window.fromMs * 1000 || at > window.toMs * 1000) continue;
    total += dt;
    const { functionName, url } = node.callFrame;
    const bucket = BUCKETS.find(([, test]) => test(functionName, url))?.[0] ?? "other (native, program)";
    totals.set(bucket, (totals.get(bucket) ?? 0) + dt);
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .map(([bucket, t]) => ({ bucket, usPerRequest: t / requests, share: t / total }));
}
