// Latency at one connection (c1): sequential requests over one keep-alive
// connection for a fixed time, timed with hrtime (autocannon's histogram
// rounds to whole milliseconds, too coarse to compare sub-millisecond p50s).
// Prints one JSON line: p50 and p99 in milliseconds, and the count.
import { Agent, request } from "node:http";

const [url, body, headersJson, duration] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const headers = { "content-type": "application/json", ...(JSON.parse(headersJson!) as Record<string, string>) };

function once(): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(url!, { method: "POST", agent, headers }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const until = Date.now() + Number(duration) * 1000;
const times: number[] = [];
while (Date.now() < until) times.push(await once());
times.sort((a, b) => a - b);
const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
process.stdout.write(JSON.stringify({ p50: at(0.5), p99: at(0.99), total: times.length }) + "\n");
agent.destroy();
