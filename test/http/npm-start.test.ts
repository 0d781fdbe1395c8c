// What a newcomer does first: `npm start`, then curl a query. Runs the real
// command (bin/hbagate.js start) on an ephemeral port with the embedded PGlite,
// and what a web page open in the same browser would try against it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { eventually } from "../harness/eventually.ts";
import { startCliGateway, type CliGateway } from "../harness/gateway.ts";
import { run, startProcess } from "../harness/spawn.ts";

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

/** Bytes as written, for what no client library sends: duplicate headers, absolute-form targets. Resolves to the status code. */
function raw(url: string, head: string, body: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    // write, not end: a half-closed socket reads as a caller gone, whose statement is cancelled.
    const socket = connect(Number(port), hostname, () => socket.write(`${head}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`));
    let text = "";
    socket.on("data", (d: Buffer) => (text += d.toString()));
    socket.on("error", reject);
    socket.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
  });
}

describe("npm start", () => {
  let gateway: CliGateway | undefined;
  let url = "";

  before(async () => {
    gateway = await startCliGateway();
    url = gateway.url;
  });
  after(async () => {
    await gateway?.stop("SIGINT");
  });

  const exists = async (table: string) =>
    (await post(`${url}/v1/postgres/sql`, { "content-type": "application/json" }, JSON.stringify({ query: "select to_regclass($1) is not null as e", params: [table] }))).body.rows[0].e;

  test("serves the README's query on loopback", async () => {
    // curl -s http://127.0.0.1:8080/v1/postgres/sql -H 'content-type: application/json' -d '{"query":"select $1::int + 1 as answer","params":[41]}'
    const res = await post(`${url}/v1/postgres/sql`, { "content-type": "application/json" }, JSON.stringify({ query: "select $1::int + 1 as answer", params: [41] }));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.rows, [{ answer: 42 }]);
    // Not a terminal: nothing but JSON lines, the curl to try in the "listening" one (no -u: loopback is trust).
    assert.equal(gateway!.stdout, "", "no plain text on stdout when it is not a terminal");
    const lines = gateway!.stderr.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const listening = lines.find((l) => l.msg === "listening");
    assert.match(String(listening?.try), /^curl -s http:\/\/127\.0\.0\.1:\d+\/v1\/postgres\/sql -H/);
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

  test("what no browser sends but a hostile client might: duplicate Host, absolute-form targets, odd Host and header spellings", async () => {
    const port = new URL(url).port;
    const json = "content-type: application/json";
    const body = JSON.stringify({ query: "create table pwned2 (x int)" });
    const tries: [string, number][] = [
      [`POST /v1/postgres/sql HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nhost: rebind.evil.example\r\n${json}`, 403],
      [`POST /v1/postgres/sql HTTP/1.1\r\nhost: rebind.evil.example\r\nhost: 127.0.0.1:${port}\r\n${json}`, 403],
      [`POST http://rebind.evil.example/v1/postgres/sql HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n${json}`, 403],
      [`POST http://rebind.evil.example/v1/postgres/sql HTTP/1.0\r\n${json}`, 403],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHOST: localhost.evil.example:${port}\r\n${json}`, 403],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHost: rebind.evil.example.:${port}\r\n${json}`, 403],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHost: localhost:${port}\r\nORIGIN: null\r\n${json}`, 403],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHost: localhost:${port}\r\norigin: https://evil.example\r\nOrigin: https://evil.example\r\n${json}`, 403],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHost: localhost:${port}\r\nContent-Type: multipart/form-data; boundary=x`, 415],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHost: localhost:${port}\r\n${json}\r\nContent-Type: text/plain`, 415],
      [`POST /v1/postgres/sql HTTP/1.1\r\nHost: localhost:${port}`, 415],
    ];
    for (const [head, status] of tries) assert.equal(await raw(url, head, body), status, head);
    assert.equal(await exists("pwned2"), false);
    // The same bytes with nothing wrong: names browsers keep on loopback, any case, a trailing dot.
    const select = JSON.stringify({ query: "select 1" });
    for (const host of [`LocalHost:${port}`, `localhost.:${port}`, `app.localhost:${port}`, `127.0.0.1:${port}`]) {
      assert.equal(await raw(url, `POST /v1/postgres/sql HTTP/1.1\r\nHost: ${host}\r\nCONTENT-TYPE: Application/JSON; Charset=UTF-8`, select), 200, host);
    }
  });

  test("stops cleanly on SIGINT", async () => {
    const code = await gateway!.stop("SIGINT");
    assert.equal(code, 0, gateway!.stderr);
  });
});

describe("what hbagate start prints", () => {
  test("in a terminal: the address, its PID and a curl to try; the log stays JSON on stderr", async (t) => {
    // script(1) gives the gateway a terminal for stdout, as a person running npm start has.
    const started = await startProcess("script", ["-qfec", `${JSON.stringify(process.execPath)} bin/hbagate.js start`, "/dev/null"], /try: (curl[^\r\n]*)/, {
      cwd: root,
      env: { ...process.env, HBAGATE_PORT: "0" },
    }).catch((err: Error) => (/ENOENT/.test(err.message) ? undefined : Promise.reject(err)));
    if (!started) return t.skip("script(1) is not installed (apt-get install -y bsdutils)");
    try {
      assert.match(started.stdout, /hbagate listening on http:\/\/127\.0\.0\.1:\d+ \(pid \d+\)/);
      assert.doesNotMatch(started.ready[1]!, / -u /);
    } finally {
      await started.stop("SIGTERM");
    }
  });

  test("with a password line for this machine, the curl carries -u", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hbagate-banner-"));
    writeFileSync(join(dir, "hba.conf"), "host all all 127.0.0.1/32 scram-sha-256\n");
    writeFileSync(join(dir, "users.txt"), '"postgres" "secret"\n');
    const gw = await startCliGateway({ HBAGATE_HBA_FILE: join(dir, "hba.conf"), HBAGATE_VERIFIER_FILE: join(dir, "users.txt") });
    try {
      const listening = gw.stderr.split("\n").map((l) => (l ? (JSON.parse(l) as Record<string, unknown>) : {})).find((l) => l.msg === "listening");
      assert.match(String(listening?.try), /^curl -s -u postgres:PASSWORD http:/);
      // And it works as printed, with the password in place of PASSWORD.
      const res = await post(`${gw.url}/v1/postgres/sql`, { "content-type": "application/json", authorization: `Basic ${Buffer.from("postgres:secret").toString("base64")}` }, JSON.stringify({ query: "select 1 as one" }));
      assert.equal(res.status, 200);
    } finally {
      await gw.stop("SIGINT");
    }
  });
});

describe("npm start as an operator runs it", () => {
  test("hbagate start --help prints its usage and starts nothing", async () => {
    // A version that takes --help for nothing starts a server instead: given up on after 20 s.
    const { code, stdout: out } = await run(process.execPath, ["bin/hbagate.js", "start", "--help"], { cwd: root, env: { ...process.env, HBAGATE_PORT: "0" }, timeoutMs: 20_000 });
    assert.equal(code, 0, `exit ${code}: ${out}`);
    assert.match(out, /^usage: hbagate start\n/);
    assert.doesNotMatch(out, /listening/);
  });

  test("the gateway logs its own PID, and stops when the npm that started it is killed (no orphan on old rules)", async () => {
    // `npm start`'s process tree: npm, a shell, then node bin/hbagate.js start; here a shell stands in for npm.
    const npm = await startProcess("/bin/sh", ["-c", `exec 3>&1; ${JSON.stringify(process.execPath)} bin/hbagate.js start & echo "child $!"; wait`], /^(.*"msg":"listening".*)\n/m, {
      cwd: root,
      env: { ...process.env, HBAGATE_PORT: "0", npm_lifecycle_event: "start" },
      readyOn: "stderr",
    });
    const logged = JSON.parse(npm.ready[1]!) as { pid: number };
    const spawned = Number(/child (\d+)/.exec(npm.stdout)?.[1]);
    assert.equal(logged.pid, spawned, "the PID logged is the gateway's own");
    npm.child.kill("SIGKILL");
    // Exited is gone, reaped or not (a container's PID 1 may never reap the orphan: a zombie).
    const alive = () => {
      try {
        return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${spawned}/stat`, "utf8"));
      } catch {
        return false;
      }
    };
    // Given 10 s to notice; the assertion below reports it if it did not.
    await eventually(() => !alive(), { timeoutMs: 10_000, intervalMs: 100, what: "the gateway to exit" }).catch(() => {});
    if (alive()) process.kill(spawned, "SIGKILL");
    assert.equal(alive(), false, `the gateway outlived the npm that started it:\n${npm.stderr.slice(-600)}`);
  });
});
