// The gateway's ports on Node (the server and the Lambda handler alike): the
// local file system, Secrets Manager through the AWS SDK, node:crypto's MAC,
// the host's DNS and interfaces, TCP sockets to the upstream.
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Settings } from "../config/settings.ts";
import { absolutePath, fileSource } from "../config/file-source.ts";
import { systemHost } from "../connection/system-host.ts";
import type { Platform } from "../gateway/platform.ts";
import { authenticateLdap } from "../auth/ldap.ts";
import { awsSecretFetcher } from "../secrets/aws.ts";
import { Pools } from "../upstream/pools.ts";
import { httpsGet } from "./https-get.ts";
import { nodeMac } from "./node-mac.ts";
import { reachableAtMostEvery } from "./reachable.ts";
import { clientCertificatesPort } from "./client-certs/port.ts";
import { ClientTrustHolder } from "./client-certs/holder.ts";

export interface NodePlatformOptions {
  readonly peer: Platform["peer"];
  readonly embeddedUpstream?: Platform["embeddedUpstream"];
  /** The Node server's WebSockets; absent on Lambda, which cannot upgrade. */
  readonly webSockets?: Platform["webSockets"];
  /** A client of the caller's (tests: an endpoint of their own); else one from the settings. */
  readonly secretsClient?: SecretsManagerClient | undefined;
  /** HBAGATE_TLS_CLIENT_CA_FILE and HBAGATE_TLS_CLIENT_CRL_FILE, loaded (clientTrust()). */
  readonly clientTrust?: ClientTrustHolder | undefined;
  /** The platform hands over certificates it verified itself (API Gateway's mutual TLS). */
  readonly platformVerifiesCertificates?: boolean;
}

/** The CA and CRL files of the settings, loaded; undefined without a CA. Throws, naming the file, when they cannot be. */
export function clientTrust(settings: Settings): ClientTrustHolder | undefined {
  const ca = settings.HBAGATE_TLS_CLIENT_CA_FILE;
  if (ca === undefined) return undefined;
  const crl = settings.HBAGATE_TLS_CLIENT_CRL_FILE;
  return new ClientTrustHolder({ caFile: absolutePath(ca), crlFile: crl === undefined ? undefined : absolutePath(crl) }, (p) => fileSource.readFile(p));
}

export function nodePlatform(settings: Settings, options: NodePlatformOptions): Platform {
  // Secrets Manager, when a region (or a test endpoint) is configured.
  const region = settings.HBAGATE_SECRETS_REGION ?? process.env.AWS_REGION;
  const client =
    options.secretsClient ??
    (region || settings.HBAGATE_SECRETS_ENDPOINT
      ? new SecretsManagerClient({ region: region ?? "us-east-1", ...(settings.HBAGATE_SECRETS_ENDPOINT ? { endpoint: settings.HBAGATE_SECRETS_ENDPOINT } : {}) })
      : undefined);
  return {
    files: { ...fileSource, absolute: absolutePath },
    secrets: client ? awsSecretFetcher(client, { timeoutMs: settings.HBAGATE_SECRETS_TIMEOUT_MS }) : undefined,
    mac: nodeMac(),
    host: systemHost,
    reachable: (host, port) => reachableAtMostEvery(host, port),
    ldap: authenticateLdap,
    httpsGet: httpsGet({
      timeoutMs: settings.HBAGATE_OAUTH_FETCH_TIMEOUT_MS,
      maxBytes: settings.HBAGATE_OAUTH_FETCH_MAX_BYTES,
      ca: settings.HBAGATE_OAUTH_CA_FILE === undefined ? undefined : fileSource.readFile(absolutePath(settings.HBAGATE_OAUTH_CA_FILE)),
    }),
    upstream: (upstreamSettings, credentials) => new Pools(upstreamSettings, credentials),
    peer: options.peer,
    clientCertificates: clientCertificatesPort({ trust: options.clientTrust, header: settings.HBAGATE_CLIENT_CERT_HEADER, platformVerifies: options.platformVerifiesCertificates ?? false }),
    embeddedUpstream: options.embeddedUpstream,
    webSockets: options.webSockets,
  };
}
