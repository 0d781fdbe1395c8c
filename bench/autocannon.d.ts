// The few fields of autocannon's result the benchmark reads (it ships no types).
declare module "autocannon" {
  interface Options {
    url: string;
    method?: string;
    body?: string;
    headers?: Record<string, string>;
    duration?: number;
    connections?: number;
    pipelining?: number;
    maxOverallRequests?: number;
    requests?: { setupRequest?: (req: { headers: Record<string, string> }) => { headers: Record<string, string> } }[];
  }
  interface Result {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    timeouts: number;
  }
  export default function autocannon(options: Options): Promise<Result>;
}
