// AWS Lambda entry point (function URLs, API Gateway v1 and v2): the same app
// as the Node server. Module scope does what every invocation needs once —
// configuration, secrets, pools — and warm invocations reuse it.
import { handle } from "hono/aws-lambda";
import type { Context } from "hono";
import { loadSettings } from "../lib/config/settings.ts";
import type { LogEvent } from "../lib/http/app.ts";
import { lambdaPeer } from "../lib/lambda/peer.ts";
import { assembleGateway } from "../lib/node/assemble.ts";

const log = (event: LogEvent) => console.log(JSON.stringify(event));

/**
 * Pools sized for Lambda: one instance serves one request at a time. Any Host:
 * AWS routes by host before the function runs (a function URL or API Gateway
 * answers only its own domain and the custom domains configured for it, and a
 * CloudFront distribution only its aliases), so a rebound DNS name reaches no
 * function; a list set in the environment still applies.
 */
const LAMBDA_DEFAULTS = { HBAGATE_POOL_MAX: "1", HBAGATE_POOL_MAX_TOTAL: "4", HBAGATE_IDLE_TIMEOUT: "60", HBAGATE_STALE_AFTER_MS: "1000", HBAGATE_ALLOWED_HOSTS: "*" };

const gateway = await assembleGateway(loadSettings({ ...LAMBDA_DEFAULTS, ...process.env }), log, {
  peer: (c: Context) => lambdaPeer((c.env as { requestContext?: unknown } | undefined)?.requestContext),
  defaultHba: undefined,
  embeddedUpstream: false,
});
if (!gateway) throw new Error("hbagate: the configuration is invalid; see the log above");

export const handler = handle(gateway.app);
