// Deploy-time choices, read once from the stage and the environment of
// `sst deploy`, validated into a frozen object. They are HBAGATE_DEPLOY_*
// rather than the runtime names so that a shell set up for local testing
// (HBAGATE_UPSTREAM_HOST=127.0.0.1) cannot leak into a deployment.

/** Where the gateway's PostgreSQL is: one it creates for the `demo` stage, or one that exists. */
export type Upstream = { readonly kind: "demo" } | ExternalUpstream;
export interface ExternalUpstream {
  readonly kind: "external";
  readonly host: string;
  readonly port: string;
  readonly ssl: UpstreamSsl;
}

const SSL_MODES = ["disable", "require", "verify-full"] as const;
export type UpstreamSsl = (typeof SSL_MODES)[number];

export interface DeployOptions {
  readonly upstream: Upstream;
  /** Set HBAGATE_VERIFIER_FILE: passwords are checked against the `verifier` key, not by an upstream login. */
  readonly verifier: boolean;
  /** Put an API Gateway HTTP API in front instead of the function URL. */
  readonly apiGateway: boolean;
  /**
   * The gateway's own login (HBAGATE_SERVICE_USER; its password in the credentials secret's
   * `roles` map): role membership for +group/samerole, and the brute-force brake shared across
   * instances in a table of the upstream (HBAGATE_AUTH_SHARED_TABLE). Absent: neither.
   */
  readonly serviceUser?: string;
  /**
   * Mutual TLS on an API Gateway custom domain: API Gateway verifies client certificates against the
   * truststore and hands them to the function (`cert` lines, `clientcert=`). Implies the API Gateway.
   */
  readonly mutualTls?: MutualTls;
}

export interface MutualTls {
  /** The custom domain callers use (the default execute-api endpoint is turned off: it has no mutual TLS). */
  readonly domain: string;
  /** The ACM certificate (its ARN) for that domain, in the stack's region. */
  readonly certificateArn: string;
  /** s3://bucket/key of the PEM bundle of client CAs. */
  readonly truststoreUri: string;
  /** That object's S3 version, so a new bundle is a deliberate deploy. */
  readonly truststoreVersion?: string;
}
/** The table every instance counts failed verifications in, when a service user is deployed. */
export const SHARED_FAILURE_TABLE = "hbagate_failures";

/** The stage that creates a VPC, an RDS PostgreSQL instance and an RDS Proxy. */
export const DEMO_STAGE = "demo";

export function deployOptions(stage: string, env: Readonly<Record<string, string | undefined>>): DeployOptions {
  const problems: string[] = [];
  const flag = (key: string): boolean => {
    const value = env[key];
    if (value === undefined || value === "" || value === "false" || value === "0") return false;
    if (value === "true" || value === "1") return true;
    problems.push(`${key}=${JSON.stringify(value)}: expected true or false`);
    return false;
  };
  const upstream = ((): Upstream => {
    if (stage === DEMO_STAGE) return { kind: "demo" };
    const host = env.HBAGATE_DEPLOY_UPSTREAM_HOST ?? "";
    const port = env.HBAGATE_DEPLOY_UPSTREAM_PORT ?? "5432";
    // Verified unless the deployer chooses otherwise: `require` encrypts but would take any certificate.
    const ssl = env.HBAGATE_DEPLOY_UPSTREAM_SSL ?? "verify-full";
    if (host === "") problems.push(`HBAGATE_DEPLOY_UPSTREAM_HOST is required: the PostgreSQL server the gateway connects to (or deploy the stage "${DEMO_STAGE}" for a new one)`);
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) problems.push(`HBAGATE_DEPLOY_UPSTREAM_PORT=${JSON.stringify(port)}: expected a port 1-65535`);
    if (!(SSL_MODES as readonly string[]).includes(ssl)) problems.push(`HBAGATE_DEPLOY_UPSTREAM_SSL=${JSON.stringify(ssl)}: expected one of ${SSL_MODES.join(", ")}`);
    return { kind: "external", host, port, ssl: ssl as UpstreamSsl };
  })();
  const serviceUser = env.HBAGATE_DEPLOY_SERVICE_USER ?? "";
  if (serviceUser !== "" && (new TextEncoder().encode(serviceUser).length > 63 || /[\0\s]/.test(serviceUser))) {
    problems.push(`HBAGATE_DEPLOY_SERVICE_USER=${JSON.stringify(serviceUser)}: expected a role name (at most 63 bytes, no spaces)`);
  }
  const mutualTls = ((): MutualTls | undefined => {
    const domain = env.HBAGATE_DEPLOY_MTLS_DOMAIN ?? "";
    const truststoreUri = env.HBAGATE_DEPLOY_MTLS_TRUSTSTORE ?? "";
    const certificateArn = env.HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN ?? "";
    const truststoreVersion = env.HBAGATE_DEPLOY_MTLS_TRUSTSTORE_VERSION ?? "";
    if (domain === "" && truststoreUri === "" && certificateArn === "" && truststoreVersion === "") return undefined;
    if (!/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i.test(domain)) problems.push(`HBAGATE_DEPLOY_MTLS_DOMAIN=${JSON.stringify(domain)}: expected the custom domain name callers use (mutual TLS needs one)`);
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+/.test(truststoreUri)) problems.push(`HBAGATE_DEPLOY_MTLS_TRUSTSTORE=${JSON.stringify(truststoreUri)}: expected s3://bucket/key of the PEM bundle of client CAs`);
    if (!/^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[0-9a-f-]+$/.test(certificateArn)) problems.push(`HBAGATE_DEPLOY_MTLS_CERTIFICATE_ARN=${JSON.stringify(certificateArn)}: expected the ACM certificate ARN for the domain`);
    return { domain, certificateArn, truststoreUri, ...(truststoreVersion === "" ? {} : { truststoreVersion }) };
  })();
  const options = {
    upstream,
    verifier: flag("HBAGATE_DEPLOY_VERIFIER"),
    // Mutual TLS is a property of an API Gateway custom domain: function URLs have none.
    apiGateway: flag("HBAGATE_DEPLOY_API_GATEWAY") || mutualTls !== undefined,
    ...(serviceUser === "" ? {} : { serviceUser }),
    ...(mutualTls ? { mutualTls } : {}),
  };
  if (problems.length > 0) throw new Error(`invalid deploy options:\n  ${problems.join("\n  ")}`);
  return Object.freeze(options);
}
