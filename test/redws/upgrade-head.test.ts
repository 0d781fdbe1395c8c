// Red team (issue 17, fixed findings and guarantees): bytes a client sends in the same packet as its upgrade request
// (before it has read the 101). A WebSocket client may not do so, a hostile one can.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { queryMessage, RawSession, startupMessage, type SessionGateway, startTrustedApp } from "../harness/sessions.ts";

/** A client frame: FIN, the opcode, masked as a client's must be (unless `unmasked`). */
function frame(opcode: number, payload: Uint8Array, unmasked = false): Buffer {
  const head: number[] = [0x80 | opcode];
  const len = payload.length;
  const maskBit = unmasked ? 0 : 0x80;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else throw new Error("too long for this helper");
  if (unmasked) return Buffer.concat([Buffer.from(head), payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from(head), mask, body]);
}

function upgradeRequest(authority: string): string {
  return [
    "GET /v2 HTTP/1.1",
    `Host: ${authority}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
    "Sec-WebSocket-Version: 13",
    "",
    "",
  ].join("\r\n");
}

/** Sends the upgrade and `extra` in one write; resolves with everything the server sent until it closed or `ms` passed. */
function rawUpgrade(authority: string, extra: Buffer, ms = 1500): Promise<Buffer> {
  const [host, port] = [authority.slice(0, authority.lastIndexOf(":")), Number(authority.slice(authority.lastIndexOf(":") + 1))];
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, host, () => sock.write(Buffer.concat([Buffer.from(upgradeRequest(authority)), extra])));
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", () => {});
    const done = () => {
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    sock.on("close", done);
    setTimeout(done, ms);
  });
}

describe("redws: frames sent together with the upgrade request", () => {
  let app: Awaited<ReturnType<typeof startTrustedApp>>;
  let gw: SessionGateway;
  before(async () => {
    app = await startTrustedApp();
    ({ gw } = app);
  });
  after(async () => app?.close());

  const stillServes = async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.send(queryMessage("select 1"));
    assert.ok(await s.next("D"));
    s.close();
  };

  // GUARANTEE (passes): ws parses the head only after hono has attached its listeners.
  test("an invalid frame (unmasked) right behind the upgrade: the process stays up", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      await rawUpgrade(gw.authority, frame(0x2, startupMessage({ user: "app", database: "postgres" }), true));
      await rawUpgrade(gw.authority, Buffer.from([0x8f, 0x80, 1, 2, 3, 4])); // reserved opcode
    } finally {
      process.off("uncaughtException", onUncaught);
    }
    assert.deepEqual(uncaught.map(String), []);
    await stillServes();
  });

  // GUARANTEE (passes).
  test("a startup sent in the same packet as the upgrade is answered (not lost until the auth timeout)", async () => {
    const got = await rawUpgrade(gw.authority, frame(0x2, startupMessage({ user: "app", database: "postgres" })), 1500);
    const text = got.toString("latin1");
    assert.match(text, /^HTTP\/1.1 101/);
    // AuthenticationOk: 'R', length 8, code 0.
    assert.ok(got.includes(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])), `AuthenticationOk among: ${JSON.stringify(text.slice(text.indexOf("\r\n\r\n") + 4))}`);
  });
});
