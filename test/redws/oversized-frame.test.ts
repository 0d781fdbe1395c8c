// Red team (issue 17, fixed findings and guarantees): an oversized message must get an ErrorResponse (54000)
// and a close, however the client frames it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RawSession, type SessionGateway, startTrustedApp } from "../harness/sessions.ts";
import { MessageWriter } from "../../lib/wire/protocol.ts";

describe("redws: oversized frames", () => {
  let app: Awaited<ReturnType<typeof startTrustedApp>>;
  let gw: SessionGateway;
  before(async () => {
    app = await startTrustedApp({ HBAGATE_SESSION_MAX_MESSAGE_BYTES: "65536" });
    ({ gw } = app);
  });
  after(async () => app?.close());

  // Found by the red team: ws's maxPayload (2 x HBAGATE_SESSION_MAX_MESSAGE_BYTES + 1 KiB) is
  // checked before the session sees a byte, so a frame above it is closed with 1009 and no
  // ErrorResponse (ws buffers a whole frame: the bound is what keeps memory bounded). Kept and
  // documented (docs/sessions.md); a message within a frame gets its 54000
  // (session-faults.test.ts). What must hold: the close, and the process serving on.
  test("a frame larger than the frame bound is closed with 1009, and the gateway serves on", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.send(new MessageWriter().cstring(`select '${"x".repeat(200_000)}'`).finish("Q"));
    assert.equal(await s.closed, 1009);
    const next = new RawSession(gw.wsUrl);
    await next.login({ user: "app", database: "postgres" });
    next.close();
  });
});
