// The embedded default upstream for `npm start`: PGlite (PostgreSQL in WASM)
// served by pglite-socket, so the same pool code runs as against
// a real server. Node only.
//
// PGlite lets any client in under any name without a password, so it is
// served on a Unix socket in a directory only this process's user can enter
// (mkdtemp makes it 0700): the gateway is its only way in. For the same
// reason it cannot check a password: see embeddedCannotVerify in
// lib/config/configuration.ts.
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface EmbeddedUpstream {
  /** A socket directory, as libpq and postgres.js take it: the socket is `${host}/.s.PGSQL.${port}`. */
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Any number names the socket file; PostgreSQL's default keeps it familiar. */
const PORT = 5432;

export async function startEmbeddedUpstream(): Promise<EmbeddedUpstream> {
  const dir = await mkdtemp(join(tmpdir(), "hbagate-pglite-"));
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, path: join(dir, `.s.PGSQL.${PORT}`), maxConnections: 16 });
  await server.start();
  return {
    host: dir,
    port: PORT,
    async close() {
      await server.stop();
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
