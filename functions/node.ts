// Node server entry point: process environment and signals in, the gateway out.
import { readFileSync } from "node:fs";
import { loadSettings } from "../lib/config/settings.ts";
import type { LogEvent } from "../lib/log.ts";
import { startGateway } from "../lib/node/gateway.ts";

const log = (event: LogEvent) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...event }) + "\n");

export async function start(_args: readonly string[]): Promise<number> {
  let settings;
  try {
    settings = loadSettings(process.env, (path) => readFileSync(path, "utf8"));
  } catch (err) {
    log({ level: "error", msg: "not starting", error: (err as Error).message });
    return 1;
  }
  let gateway;
  try {
    gateway = await startGateway(settings, log);
  } catch (err) {
    // A combination of settings that cannot work (e.g. no connection left for requests).
    if (!(err instanceof RangeError)) throw err;
    log({ level: "error", msg: "not starting", error: err.message });
    // What was started on the way (the embedded PGlite) would keep the process alive.
    process.exit(1);
  }
  if (!gateway) return 1;
  const [url] = gateway.urls;
  for (const u of gateway.urls) process.stdout.write(`hbagate listening on ${u}\n`);
  process.stdout.write(`try: curl -s ${url}/v1/postgres/sql -H 'content-type: application/json' -d '{"query":"select $1::int + 1 as answer","params":[41]}'\n`);

  process.on("SIGHUP", () => void gateway.reload());
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  await gateway.close();
  return 0;
}
