// AWS Lambda entry point (function URLs, API Gateway v1 and v2): the same app
// as the Node server. Module scope does what every invocation needs once —
// configuration, secrets, pools — and warm invocations reuse it.
import { handle } from "hono/aws-lambda";
import type { Context } from "hono";
import { loadLambdaSettings } from "../lib/config/settings.ts";
import type { LogEvent } from "../lib/http/app.ts";
import { lambdaPeer } from "../lib/lambda/peer.ts";
import { assembleGateway } from "../lib/node/assemble.ts";

const log = (event: LogEvent) => console.log(JSON.stringify(event));

// Lambda's defaults (pool sizes, any Host, responses within its payload limit) are in lib/config/settings.ts.
const gateway = await assembleGateway(loadLambdaSettings(process.env), log, {
  peer: (c: Context) => lambdaPeer((c.env as { requestContext?: unknown } | undefined)?.requestContext),
  defaultHba: undefined,
  embeddedUpstream: false,
  // The body travels escaped inside the JSON payload Lambda limits.
  responsesAsJsonString: true,
});
if (!gateway) throw new Error("hbagate: the configuration is invalid; see the log above");

export const handler = handle(gateway.app);
