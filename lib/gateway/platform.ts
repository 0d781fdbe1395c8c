// What the gateway asks of the runtime it runs on, and nothing more: the
// assembly (assemble.ts) imports no runtime module, and each entry point
// (lib/node for the Node server and Lambda, an edge runtime's own) hands it
// these ports.
import type { LdapAuthenticate } from "../auth/ldap-port.ts";
import type { HttpsGet } from "../auth/oauth/issuer-keys.ts";
import type { KeyedMac } from "../auth/verified-callers.ts";
import type { ConfigSource } from "../config/source.ts";
import type { ForwardedCertificate } from "../connection/forwarded.ts";
import type { GatewayDeps } from "../http/app.ts";
import type { MatchEnvironment } from "../hba/match.ts";
import type { SecretFetcher } from "../secrets/secret-store.ts";
import type { EmbeddedUpstream } from "../upstream/embedded.ts";
import type { Pools } from "../upstream/pools.ts";
import type { RoleCredentials, UpstreamSettings } from "../upstream/upstream-settings.ts";
import type { WebSocketPort } from "../wire/websocket.ts";

export interface Platform {
  /** Configuration files: the hba and ident files with their includes, the verifier file, CA files. */
  readonly files: ConfigSource & {
    /** A path from the settings, made absolute (messages and includes name files by absolute path). */
    absolute(path: string): string;
  };
  /** Secrets Manager's GetSecretValue, when a region or endpoint is configured. */
  readonly secrets: SecretFetcher | undefined;
  /** The verified-caller cache's MAC under a key of the process's own. */
  readonly mac: KeyedMac;
  /** The host's names and interfaces, for host-name, samehost and samenet lines. */
  readonly host: Required<Omit<MatchEnvironment, "isMember">>;
  /** Readiness: a probe whether the upstream accepts connections (rate-limited: anyone may call it). */
  readonly reachable: (host: string, port: number) => () => Promise<string>;
  /** The directory client for ldap lines; undefined where the runtime has none (those lines then answer 08001). */
  readonly ldap: LdapAuthenticate | undefined;
  /** GET over verified HTTPS, for the oauth issuers' discovery documents and keys; undefined where the runtime cannot. */
  readonly httpsGet: HttpsGet | undefined;
  /** Connections to the upstream. */
  readonly upstream: (settings: UpstreamSettings, credentials: RoleCredentials) => Pools;
  /** How the runtime tells who is connected. */
  readonly peer: GatewayDeps["peer"];
  /** WebSocket upgrades, for interactive sessions; undefined where the runtime cannot upgrade (a Lambda function URL). */
  readonly webSockets: WebSocketPort | undefined;
  /** Client certificates: whether any verified one can reach the gateway, a trusted proxy's header, reloading the CA and CRL. */
  readonly clientCertificates: ClientCertificates;
  /** Starts an in-process upstream when none is configured (the Node server's PGlite); undefined elsewhere. */
  readonly embeddedUpstream: (() => Promise<EmbeddedUpstream>) | undefined;
}

export interface ClientCertificates {
  /** Verified client certificates can reach the gateway (a CA to check them, or a platform that does). */
  readonly available: boolean;
  /** The header trusted proxies forward the client's certificate in, verified against the CA. */
  readonly forwarded: ForwardedCertificate | undefined;
  /** Re-read the CA and CRL files: undefined when applied, else why not (the previous ones stay in force). */
  reload(): string | undefined;
}

export const NO_CLIENT_CERTIFICATES: ClientCertificates = { available: false, forwarded: undefined, reload: () => undefined };
