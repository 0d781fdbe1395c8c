// AWS Lambda entry point (function URLs, API Gateway v1 and v2): the same app
// as the Node server. Module scope does what every invocation needs once —
// configuration, secrets, pools — and warm invocations reuse it.
import { readFileSync } from "node:fs";
import { handle } from "hono/aws-lambda";
import type { Context } from "hono";
import { loadLambdaSettings } from "../lib/config/settings.ts";
import type { LogEvent } from "../lib/log.ts";
import { lambdaPeer } from "../lib/lambda/peer.ts";
import { assembleGateway } from "../lib/gateway/assemble.ts";
import { clientTrust, nodePlatform } from "../lib/node/platform.ts";

const log = (event: LogEvent) => console.log(JSON.stringify(event));

// Lambda's defaults (pool sizes, any Host, responses within its payload limit) are in lib/config/settings.ts.
const settings = loadLambdaSettings(process.env, (path) => readFileSync(path, "utf8"));
// A CA or CRL file that cannot be read stops the cold start: the log names the file.
const trust = clientTrust(settings);
const platform = nodePlatform(settings, {
  peer: (c: Context) => lambdaPeer((c.env as { requestContext?: unknown } | undefined)?.requestContext, trust),
  clientTrust: trust,
  // API Gateway's mutual TLS hands over certificates it verified.
  platformVerifiesCertificates: true,
});
const gateway = await assembleGateway(settings, log, platform, {
  defaultHba: undefined,
  // The body travels escaped inside the JSON payload Lambda limits.
  responsesAsJsonString: true,
  // Secrets Manager unreachable at a cold start: requests are 08001 (503) and retry it, rather
  // than an initialisation error that only the platform reports.
  startUnconfigured: true,
});
// Only settings can stop it now (no HBAGATE_HBA_FILE or upstream): a redeploy is the fix for those.
if (!gateway) throw new Error("hbagate: the settings are incomplete; see the log above");

export const handler = handle(gateway.app);
