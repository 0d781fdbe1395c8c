// What the role-cache red tests share: asking for a bearer token's role as a
// request would, collecting garbage on demand, and reading the heap as text.
import v8 from "node:v8";
import vm from "node:vm";
import { identifyCaller, type CallerSettings } from "../../lib/connection/caller.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

const peer = { transport: "host" as const, address: "127.0.0.1", encrypted: false };
export const b64 = (v: string) => Buffer.from(v).toString("base64url");
export const HEADER = b64(JSON.stringify({ alg: "ES256", typ: "JWT" }));
const settings: CallerSettings = { anonymousUser: undefined, bearerRole: { claim: "role", fallback: "fallback" } };

/** The role lookup a request with this Authorization header makes. */
export const ask = (authorization: string) => void identifyCaller(peer, "postgres", authorization, settings);

/** Collect garbage, after leaving nothing of ours in RegExp's legacy statics (RegExp.input). */
export function settle(): void {
  /x/.exec("y");
  gc();
  gc();
}

export async function heapSnapshotText(): Promise<string> {
  const chunks: string[] = [];
  for await (const chunk of v8.getHeapSnapshot()) chunks.push(String(chunk));
  return chunks.join("");
}
