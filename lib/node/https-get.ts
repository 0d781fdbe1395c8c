// The oauth method's fetch on Node: GET over HTTPS only, certificates always
// verified (Node's roots, or the configured CA), no redirects, a deadline for
// the whole exchange and a cap on the body, so a slow or hostile issuer can
// neither stall verification nor fill memory.
import { request } from "node:https";
import type { HttpsGet } from "../auth/oauth/issuer-keys.ts";

export interface HttpsGetOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** PEM CA bundle; undefined: Node's roots (and NODE_EXTRA_CA_CERTS). */
  readonly ca: string | undefined;
}

export function httpsGet(options: HttpsGetOptions): HttpsGet {
  return (url) =>
    new Promise<string>((resolve, reject) => {
      if (!url.startsWith("https://")) return reject(new Error(`${url}: only https URLs are fetched`));
      const req = request(url, { method: "GET", headers: { accept: "application/json" }, ...(options.ca ? { ca: options.ca } : {}), rejectUnauthorized: true, signal: AbortSignal.timeout(options.timeoutMs) }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`${url}: HTTP ${res.statusCode}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            req.destroy(new Error(`${url}: the body is larger than ${options.maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        res.on("error", reject);
      });
      req.on("error", (err) => reject(err.name === "AbortError" ? new Error(`${url}: no answer within ${options.timeoutMs} ms`) : err));
      req.end();
    });
}
