// What a newcomer does first: `npm start`, then curl a query. Runs the real
// command (bin/hbagate.js start) on an ephemeral port with the embedded PGlite,
// and what a web page open in the same browser would try against it.
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** A POST with exactly these headers (Host included), as a browser or curl would send it. */
function post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-length": String(Buffer.byteLength(body)), ...headers } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("npm start", () => {
  let child: ChildProcessWithoutNullStreams;
  let url = "";
  let out = "";
  let err = "";

  before(async () => {
    child = spawn(process.execPath, ["bin/hbagate.js", "start"], { cwd: root, env: { ...process.env, HBAGATE_PORT: "0" }, stdio: "pipe" });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line within 60 s; stderr:\n${err}`)), 60_000);
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /hbagate listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once("exit", (code) => reject(new Error(`exited ${code} before listening; stderr:\n${err}`)));
    });
  });
  after(async () => {
    if (child.exitCode !== null) return;
    child.kill("SIGINT");
    await once(child, "exit");
  });

  const exists = async (table: string) =>
    (await post(`${url}/v1/postgres/sql`, { "content-type": "application/json" }, JSON.stringify({ query: "select to_regclass($1) is not null as e", params: [table] }))).body.rows[0].e;

  test("serves the README's query on loopback", async () => {
    // curl -s http://127.0.0.1:8080/v1/postgres/sql -H 'content-type: application/json' -d '{"query":"select $1::int + 1 as answer","params":[41]}'
    const res = await post(`${url}/v1/postgres/sql`, { "content-type": "application/json" }, JSON.stringify({ query: "select $1::int + 1 as answer", params: [41] }));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.rows, [{ answer: 42 }]);
    assert.match(out, /try: curl/);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
  });

  test("a web page cannot run SQL through the browser: cross-origin, text/plain, rebound Host", async () => {
    const attack = JSON.stringify({ query: "create table pwned (x int)" });
    const port = new URL(url).port;
    // All three at once (what the page sends after rebinding its name to 127.0.0.1), then each alone.
    const tries: [Record<string, string>, number, string][] = [
      [{ origin: "https://evil.example", "content-type": "text/plain", host: `rebind.evil.example:${port}` }, 403, "28000"],
      [{ origin: "https://evil.example", "content-type": "application/json" }, 403, "28000"],
      [{ origin: "https://evil.example", "content-type": "text/plain" }, 403, "28000"],
      [{ "content-type": "text/plain;charset=UTF-8" }, 415, "22P04"],
      [{ host: `rebind.evil.example:${port}`, "content-type": "application/json" }, 403, "28000"],
    ];
    for (const [headers, status, code] of tries) {
      const res = await post(`${url}/v1/postgres/sql`, headers, attack);
      assert.deepEqual([res.status, res.body.error?.code], [status, code], JSON.stringify({ headers, body: res.body }));
    }
    assert.equal(await exists("pwned"), false);
  });

  test("stops cleanly on SIGINT", async () => {
    child.kill("SIGINT");
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 0, err);
  });
});
