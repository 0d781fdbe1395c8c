// /readyz's upstream check is anyone's to call: a flood of probes opens one
// TCP connection per second at most.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { reachableAtMostEvery } from "../../lib/node/reachable.ts";
import { eventually } from "../harness/eventually.ts";

test("concurrent and repeated probes share one connection per interval", async () => {
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const port = (server.address() as { port: number }).port;
    const probe = reachableAtMostEvery("127.0.0.1", port, 200);
    const answers = await Promise.all(Array.from({ length: 50 }, probe));
    assert.ok(answers.every((a) => a === "ok"));
    for (let i = 0; i < 20; i++) assert.equal(await probe(), "ok");
    // The server counts the connection once it has accepted it.
    await eventually(() => connections >= 1, { intervalMs: 5, what: "the server to accept the probe's connection" });
    assert.equal(connections, 1);
    await new Promise((r) => setTimeout(r, 250)); // the point: past the 200 ms the answer is kept for
    assert.equal(await probe(), "ok");
    await eventually(() => connections >= 2, { intervalMs: 5, what: "the server to accept the second connection" });
    assert.equal(connections, 2);
  } finally {
    server.close();
  }
});
