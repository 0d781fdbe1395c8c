// The gateway as one Lambda function (functions/lambda.ts), reached through its
// function URL or, with HBAGATE_DEPLOY_API_GATEWAY, an API Gateway HTTP API.
//
// - nodejs22.x: Lambda stopped creating nodejs20.x functions on 31 August 2026
//   (Node 20's end of life was 30 April 2026); the code targets Node 20 and
//   runs unchanged on 22.
// - arm64: cheaper per GB-second than x86_64, and the bundle is pure
//   JavaScript (postgres.js, ldapts, hono), so nothing is built per
//   architecture.
// - 256 MB: one request at a time per instance, pools of one connection.
// - Function URL auth NONE: the pg_hba.conf rules and passwords decide, and
//   callers are `host` connections from their source address, as with the
//   Node server. (With AWS_IAM every caller would be a `local` connection whose
//   system user is its IAM principal's ARN — lib/lambda/peer.ts — and clients such as
//   @neondatabase/serverless, which cannot sign requests, would be shut out.)
// - No CORS on the URL or the API: AWS would answer preflights itself with
//   `*`; the gateway's own HBAGATE_CORS_ORIGINS policy applies instead.
import type { DemoDatabase } from "./database";
import { SHARED_FAILURE_TABLE, type ExternalUpstream, type MutualTls } from "./options";
import type { GatewaySecrets } from "./secrets";

/** An existing server, or the demo database: the function then runs in its VPC, pointed at the RDS Proxy. */
export type GatewayUpstream = ExternalUpstream | { readonly kind: "demo"; readonly database: DemoDatabase };

export interface GatewayArgs {
  readonly secrets: GatewaySecrets;
  readonly upstream: GatewayUpstream;
  readonly verifier: boolean;
  readonly apiGateway: boolean;
  readonly serviceUser?: string;
  /** Client certificates verified by API Gateway on a custom domain (the API Gateway is then in front). */
  readonly mutualTls?: MutualTls;
  /** The directory holding the built lambda.mjs (infra/bundle.ts). */
  readonly bundle: string;
}

export function gateway(args: GatewayArgs) {
  const { rules, credentials } = args.secrets;
  const reference = (secret: aws.secretsmanager.Secret, key: string) => $interpolate`secretsmanager:${secret.arn}#${key}`;
  const upstream = upstreamEnvironment(args.upstream);
  const fn = new sst.aws.Function("Gateway", {
    // The bundle the tests invoke, shipped as it is (infra/bundle.ts).
    bundle: args.bundle,
    handler: "lambda.handler",
    runtime: "nodejs22.x",
    architecture: "arm64",
    memory: "256 MB",
    // A statement is cancelled (57014, a structured 504) before the function
    // would be killed (a bare 502); API Gateway gives up at 30 s too.
    timeout: "30 seconds",
    url: args.apiGateway ? false : { authorization: "none", cors: false },
    link: [args.secrets.link],
    ...(args.upstream.kind === "demo" ? { vpc: args.upstream.database.vpc } : {}),
    // SST 4.17.1's function role also trusts the account root outside `sst dev`
    // (it tests an Output, always truthy, for dev mode): anyone in the account
    // allowed sts:AssumeRole could read the secrets as the gateway. Deployed,
    // Lambda only; `sst dev` needs that trust to run the function locally.
    ...($dev ? {} : { transform: { role: { assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "lambda.amazonaws.com" }) } } }),
    environment: {
      HBAGATE_HBA_FILE: reference(rules, "hba"),
      HBAGATE_IDENT_FILE: reference(rules, "ident"),
      HBAGATE_ROLE_CREDENTIALS_FILE: reference(credentials, "roles"),
      ...(args.verifier ? { HBAGATE_VERIFIER_FILE: reference(credentials, "verifier") } : {}),
      ...upstream,
      HBAGATE_STATEMENT_TIMEOUT_MS: "25000",
      // Lambda runs many instances, each with its own memory: with a service login, failed
      // verifications are counted in the upstream, so a lock holds on every instance.
      ...(args.serviceUser ? { HBAGATE_SERVICE_USER: args.serviceUser, HBAGATE_AUTH_SHARED_TABLE: SHARED_FAILURE_TABLE } : {}),
    },
  });
  if (!args.apiGateway) return { fn, url: fn.url };
  const mtls = args.mutualTls;
  const api = new sst.aws.ApiGatewayV2("Api", {
    // Mutual TLS: the domain's certificate from ACM (no DNS records made here: point the name at
    // the API's regional domain name yourself).
    ...(mtls ? { domain: { name: mtls.domain, cert: mtls.certificateArn, dns: false as const } } : {}),
    transform: {
      // `cors: false` would still send an empty CORS configuration, and with any
      // CORS configuration API Gateway answers preflights itself. With mutual TLS the
      // default execute-api endpoint goes: it has none, and would let callers around it.
      api: { corsConfiguration: undefined, ...(mtls ? { disableExecuteApiEndpoint: true } : {}) },
      // API Gateway verifies client certificates against this truststore before the function
      // runs and puts the verified one in the request context (lib/lambda/peer.ts).
      ...(mtls
        ? { domainName: { mutualTlsAuthentication: { truststoreUri: mtls.truststoreUri, ...(mtls.truststoreVersion ? { truststoreVersion: mtls.truststoreVersion } : {}) } } }
        : {}),
    },
  });
  api.route("$default", fn.arn);
  return { fn, url: api.url };
}

/**
 * Lambda's Node runtime bundles the Amazon RDS certificate authorities in
 * /var/runtime/ca-cert.pem but, from Node.js 20 on, trusts them only when
 * NODE_EXTRA_CA_CERTS names that file (read when Node starts, so it is set
 * here, not by the gateway). With it, verify-full checks an RDS instance's or
 * proxy's certificate and name against the RDS roots as well as Node's own.
 */
export const LAMBDA_RDS_CA_BUNDLE = "/var/runtime/ca-cert.pem";

function upstreamEnvironment(upstream: GatewayUpstream): Record<string, $util.Input<string>> {
  const verified = { NODE_EXTRA_CA_CERTS: LAMBDA_RDS_CA_BUNDLE };
  switch (upstream.kind) {
    case "external":
      return { HBAGATE_UPSTREAM_HOST: upstream.host, HBAGATE_UPSTREAM_PORT: upstream.port, HBAGATE_UPSTREAM_SSL: upstream.ssl, ...(upstream.ssl === "verify-full" ? verified : {}) };
    case "demo":
      // sst.aws.Postgres's `host` is the proxy's endpoint when `proxy: true`;
      // RDS Proxy for PostgreSQL listens on 5432 and accepts TLS, its certificate for that name.
      return { HBAGATE_UPSTREAM_HOST: upstream.database.postgres.host, HBAGATE_UPSTREAM_PORT: "5432", HBAGATE_UPSTREAM_SSL: "verify-full", ...verified };
    default: {
      const unknown: never = upstream;
      throw new Error(`unknown upstream ${JSON.stringify(unknown)}`);
    }
  }
}
