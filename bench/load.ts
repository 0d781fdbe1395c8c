// The load generator, in a process of its own: autocannon against one URL for a
// fixed time, printing one JSON line with throughput and latency.
import autocannon from "autocannon";

const [url, body, headersJson, duration, connections] = process.argv.slice(2);
// An authorization given as a list is sent in turn, one per request (several end users' tokens).
const { authorization, ...headers } = JSON.parse(headersJson!) as Record<string, string | string[]>;
let turn = 0;
const result = await autocannon({
  url: url!,
  method: "POST",
  body: body!,
  headers: { "content-type": "application/json", ...(headers as Record<string, string>), ...(typeof authorization === "string" ? { authorization } : {}) },
  ...(Array.isArray(authorization)
    ? { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: authorization[turn++ % authorization.length]! } }) }] }
    : {}),
  duration: Number(duration),
  connections: Number(connections),
  pipelining: 1,
  // Bounded in count as well as time: far above what any server here reaches, it only
  // stops a run that would otherwise go on (a server answering errors at full speed).
  maxOverallRequests: 100_000 * Number(duration),
});
const bad = result.non2xx + result.errors + result.timeouts;
process.stdout.write(
  JSON.stringify({ rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, total: result.requests.total, bad }) + "\n",
);
