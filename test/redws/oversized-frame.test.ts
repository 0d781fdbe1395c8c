// Red-team (redws): an oversized message must get an ErrorResponse (54000)
// and a close, however the client frames it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { RawSession, startSessionGateway, type SessionGateway } from "../harness/sessions.ts";
import { MessageWriter } from "../../lib/wire/protocol.ts";

describe("redws: oversized frames", () => {
  let cluster: Cluster;
  let gw: SessionGateway;
  before(async () => {
    cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login;`);
    await cluster.writeHba("host all app 127.0.0.1/32 trust\n", { reload: true });
    gw = await startSessionGateway("host all app 127.0.0.1/32 trust\n", cluster.port, { HBAGATE_SESSION_MAX_MESSAGE_BYTES: "65536" });
  });
  after(async () => {
    await gw?.close();
    await cluster?.stop();
  });

  // FINDING (low): ws's maxPayload is 2 x HBAGATE_SESSION_MAX_MESSAGE_BYTES + 1024;
  // a frame above it is closed by ws with 1009 before the session sees a byte,
  // so the client gets no ErrorResponse (54000), only a WebSocket close code
  // that PostgreSQL drivers do not read ("Connection terminated unexpectedly").
  test("a message larger than the frame bound still gets 54000 before the close", async () => {
    const s = new RawSession(gw.wsUrl);
    await s.login({ user: "app", database: "postgres" });
    s.send(new MessageWriter().cstring(`select '${"x".repeat(200_000)}'`).finish("Q"));
    const e = await s.error(5000);
    assert.equal(e?.code, "54000", `close code ${s.closeCode}`);
  });
});
