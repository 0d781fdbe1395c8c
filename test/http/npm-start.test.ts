// What a newcomer does first: `npm start`, then curl a query. Runs the real
// command (bin/hbagate.js start) on an ephemeral port with the embedded PGlite.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("npm start serves a query on loopback and stops cleanly on SIGINT", async () => {
  const child = spawn(process.execPath, ["bin/hbagate.js", "start"], {
    cwd: root,
    env: { ...process.env, HBAGATE_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
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
    const res = await fetch(`${url}/v1/postgres/sql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "select $1::int + 1 as answer", params: [41] }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { rows: unknown }).rows, [{ answer: 42 }]);
    assert.match(out, /try: curl/);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
  } finally {
    child.kill("SIGINT");
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 0, err);
  }
});
