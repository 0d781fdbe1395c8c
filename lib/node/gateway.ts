// The Node server: the assembled gateway behind TCP (HTTP or HTTPS) and
// optional Unix-socket listeners. functions/node.ts wires signals to it.
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Settings } from "../config/settings.ts";
import type { LogEvent } from "../log.ts";
import { assembleGateway } from "../gateway/assemble.ts";
import { clientTrust, nodePlatform } from "./platform.ts";
import type { ClientTrustHolder } from "./client-certs/holder.ts";
import { isLoopbackHost, nodePeer, startListeners } from "./listeners.ts";
import { nodeWebSockets } from "./websocket.ts";
import { startPgListener } from "./pg-listener.ts";
import { localFactsFor, tryCurl } from "./banner.ts";

/** PGlite, loaded only when the Node server starts without an upstream. */
const startEmbedded = async () => (await import("../upstream/embedded.ts")).startEmbeddedUpstream();

export interface RunningGateway {
  readonly urls: readonly string[];
  /** host:port of PostgreSQL's protocol (HBAGATE_PG_PORT), when it listens. */
  readonly pgAddress?: string;
  /** A curl to try against the first URL, with -u when a request from this machine needs a password. */
  tryCommand(): Promise<string>;
  /** Re-read the configuration files and secrets; false (and the old configuration kept) if anything is invalid. */
  reload(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The rules `npm start` uses when none are configured: trust from loopback
 * only. The file sits in config/ at the package root: two levels above this
 * source file, one above the compiled dist/cli.mjs.
 */
const DEFAULT_HBA = ["../../config/pg_hba.conf", "../config/pg_hba.conf"]
  .map((p) => fileURLToPath(new URL(p, import.meta.url)))
  .find((p) => existsSync(p)) ?? fileURLToPath(new URL("../../config/pg_hba.conf", import.meta.url));

export async function startGateway(settings: Settings, log: (e: LogEvent) => void, secretsClient?: SecretsManagerClient): Promise<RunningGateway | undefined> {
  let trust: ClientTrustHolder | undefined;
  try {
    trust = clientTrust(settings);
  } catch (err) {
    log({ level: "error", msg: "not starting: the client certificate CA or CRL cannot be used", error: (err as Error).message });
    return undefined;
  }
  const platform = nodePlatform(settings, { peer: nodePeer, embeddedUpstream: startEmbedded, secretsClient, clientTrust: trust, webSockets: nodeWebSockets });
  const gateway = await assembleGateway(settings, log, platform, { defaultHba: DEFAULT_HBA });
  if (!gateway) return undefined;
  const listening = await startListeners(gateway.app.fetch, {
    host: settings.HBAGATE_LISTEN_HOST,
    port: settings.HBAGATE_PORT,
    unixSocket: settings.HBAGATE_UNIX_SOCKET,
    tls: settings.HBAGATE_TLS_CERT_FILE && settings.HBAGATE_TLS_KEY_FILE ? { certFile: settings.HBAGATE_TLS_CERT_FILE, keyFile: settings.HBAGATE_TLS_KEY_FILE, clientTrust: trust?.current } : undefined,
    ...(settings.HBAGATE_SESSIONS_MAX > 0 ? { webSockets: { maxMessageBytes: settings.HBAGATE_SESSION_MAX_MESSAGE_BYTES } } : {}),
  });
  trust?.onChange((next) => listening.setClientTrust(next));
  // PostgreSQL's own port: the sessions of /v2 on plain TCP, TLS when the server has a certificate.
  const tls =
    settings.HBAGATE_TLS_CERT_FILE && settings.HBAGATE_TLS_KEY_FILE
      ? { cert: readFileSync(settings.HBAGATE_TLS_CERT_FILE), key: readFileSync(settings.HBAGATE_TLS_KEY_FILE), clientTrust: () => trust?.current }
      : undefined;
  const pgListener =
    settings.HBAGATE_PG_PORT !== undefined && gateway.sessions
      ? await startPgListener(() => gateway.sessions, { host: settings.HBAGATE_LISTEN_HOST, port: settings.HBAGATE_PG_PORT, tls }).catch(async (err: unknown) => {
          await listening.close();
          await gateway.close();
          throw err;
        })
      : undefined;
  if (pgListener) log({ level: "info", msg: "PostgreSQL protocol listening", address: pgListener.address, tls: tls !== undefined });
  else if (settings.HBAGATE_PG_PORT !== undefined) log({ level: "warn", msg: "HBAGATE_PG_PORT is set but sessions are off (HBAGATE_SESSIONS_MAX=0): not listening on it" });
  const hosts = settings.HBAGATE_ALLOWED_HOSTS;
  if (!isLoopbackHost(settings.HBAGATE_LISTEN_HOST) && !hosts.any && hosts.names.size === 0 && hosts.suffixes.length === 0) {
    // Reachable from other machines, but no names listed: requests by name are refused until they are.
    log({ level: "warn", msg: "HBAGATE_ALLOWED_HOSTS is not set: only requests by IP address, localhost and *.localhost are accepted; list the names clients use (or \"*\" behind a proxy that checks them)" });
  }
  return {
    urls: listening.urls,
    ...(pgListener ? { pgAddress: pgListener.address } : {}),
    reload: gateway.reload,
    async tryCommand() {
      const url = listening.urls[0]!;
      const facts = localFactsFor(url);
      return tryCurl(url, facts ? await gateway.methodFor(facts) : undefined);
    },
    async close() {
      // Sessions first: their upgraded sockets would keep the listener's close waiting.
      gateway.endSessions();
      await Promise.all([listening.close(), pgListener?.close()]);
      await gateway.close();
    },
  };
}
