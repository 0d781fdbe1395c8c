// The ways the tests stand up a gateway, one helper each (README.md says which
// to use for what):
//
// - testApp: the Hono app in this process, no socket; requests through
//   app.request (see postSql in test/http/deps.ts). Real pools, fixed rules.
// - startNodeGateway: the Node server (lib/node/gateway.ts) in this process,
//   from HBAGATE_* settings, listening on an ephemeral port; files, reloads,
//   listeners, secrets.
// - startCliGateway: the real command, `node bin/hbagate.js start`, as a child
//   process, ready once it prints where it listens.
// (The Lambda handler: buildHandler and importHandler in test/lambda/events.ts.)
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Hono } from "hono";
import { fileURLToPath } from "node:url";
import { loadSettings, type Settings } from "../../lib/config/settings.ts";
import { createApp } from "../../lib/http/app.ts";
import type { LogEvent } from "../../lib/log.ts";
import { startGateway, type RunningGateway } from "../../lib/node/gateway.ts";
import { testDeps } from "../http/deps.ts";
import { startProcess, type Started } from "./spawn.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The gateway's app over testDeps(...): createApp(testDeps(pools, rules, overrides)). */
export function testApp(...args: Parameters<typeof testDeps>): Hono {
  return createApp(testDeps(...args));
}

/**
 * Settings from `env` for a gateway on an ephemeral port (HBAGATE_PORT=0 unless
 * `env` says otherwise), in front of the PostgreSQL on 127.0.0.1:`upstreamPort` when given.
 */
export function nodeSettings(env: Readonly<Record<string, string>>, upstreamPort?: number): Settings {
  return loadSettings({
    HBAGATE_PORT: "0",
    ...(upstreamPort === undefined ? {} : { HBAGATE_UPSTREAM_HOST: "127.0.0.1", HBAGATE_UPSTREAM_PORT: String(upstreamPort) }),
    ...env,
  });
}

/**
 * The Node server in this process, its log events pushed to `logs`. Throws, with
 * what it logged, if it does not start (for a start that is meant to be refused,
 * call startGateway and assert on its undefined).
 */
export async function startNodeGateway(settings: Settings, logs: LogEvent[] = [], secretsClient?: SecretsManagerClient): Promise<RunningGateway> {
  const started = await startGateway(settings, (e) => logs.push(e), secretsClient);
  if (!started) throw new Error(`the gateway did not start: ${JSON.stringify(logs)}`);
  return started;
}

export interface CliGateway extends Started {
  /** The http:// URL it logged. */
  readonly url: string;
}

/** `node bin/hbagate.js start` from the checkout, with HBAGATE_PORT=0 over process.env and `env`; ready once it logs "listening" (a JSON line on stderr). */
export async function startCliGateway(env: Readonly<Record<string, string>> = {}): Promise<CliGateway> {
  const started = await startProcess(process.execPath, ["bin/hbagate.js", "start"], /"msg":"listening","urls":"(http:\/\/[^" ]+)/, {
    cwd: root,
    env: { ...process.env, HBAGATE_PORT: "0", ...env },
    readyOn: "stderr",
  });
  const url = started.ready[1]!;
  return Object.assign(Object.create(started) as Started, { url }) as CliGateway;
}
