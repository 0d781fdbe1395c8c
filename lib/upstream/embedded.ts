// The embedded default upstream for `npm start`: PGlite (PostgreSQL in WASM)
// served on loopback by pglite-socket, so the same postgres.js pool code runs
// as against a real server. Node only.
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedUpstream {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startEmbeddedUpstream(): Promise<EmbeddedUpstream> {
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 16 });
  await server.start();
  const conn = server.getServerConn();
  const port = Number(conn.slice(conn.lastIndexOf(":") + 1));
  return {
    host: "127.0.0.1",
    port,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
