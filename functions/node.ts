// Node server entry point: process environment and signals in, the gateway out.
import { readFileSync } from "node:fs";
import { loadSettings } from "../lib/config/settings.ts";
import type { LogEvent } from "../lib/log.ts";
import { startGateway } from "../lib/node/gateway.ts";

const log = (event: LogEvent) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...event }) + "\n");

const START_USAGE = `usage: hbagate start

Runs the gateway. It takes no arguments: settings are HBAGATE_* environment
variables, or keys of the JSON file named by HBAGATE_CONFIG (see
docs/configuration.md). Without HBAGATE_UPSTREAM_HOST it starts an embedded
PGlite, in memory. The log is JSON lines on stderr; the line saying where it
listens gives this process's "pid": SIGHUP to it reloads the configuration,
SIGINT and SIGTERM stop it.
`;

export async function start(args: readonly string[]): Promise<number> {
  // Taken first: npm may be gone by the time the gateway listens (and is then reparented already).
  const parent = process.ppid;
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(START_USAGE);
    return 0;
  }
  if (args.length > 0) {
    process.stderr.write(`hbagate start: unexpected argument "${args[0]}"\n${START_USAGE}`);
    return 2;
  }
  // A rejection nobody handled is a bug; Node's default would end the process, and with it every
  // caller's requests and sessions. Logged for the operator to report, and the gateway serves on.
  process.on("unhandledRejection", (reason) => {
    log({ level: "error", msg: "unhandled rejection (a bug in the gateway: please report it); serving on", error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
  });
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
  const tryIt = await gateway.tryCommand();
  // The gateway's own PID: under `npm start` it is not npm's, and signals (SIGHUP to reload) go to it.
  log({ level: "info", msg: "listening", urls: gateway.urls.join(" "), pid: process.pid, try: tryIt });
  // The words for a person, only when one is watching: piped or collected, stdout and stderr are all JSON.
  if (process.stdout.isTTY) {
    for (const u of gateway.urls) process.stdout.write(`hbagate listening on ${u} (pid ${process.pid})\n`);
    process.stdout.write(`try: ${tryIt}\n`);
  }

  process.on("SIGHUP", () => void gateway.reload());
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
    // Started by `npm start`: when npm goes (killed with SIGTERM or SIGKILL, which npm does not
    // always pass on), the gateway goes too, instead of serving on as an orphan nobody signals.
    if (process.env.npm_lifecycle_event === "start") {
      setInterval(() => {
        if (process.ppid !== parent) {
          log({ level: "info", msg: "npm, which started the gateway, is gone: stopping", pid: process.pid });
          resolve();
        }
      }, 500).unref();
    }
  });
  await gateway.close();
  return 0;
}
