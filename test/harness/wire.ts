// A statement on a leased pool connection (lib/upstream/wire-connection.ts),
// for tests that act on a connection directly: its rows as objects of
// PostgreSQL's text (null for NULL).
import type { WireConnection } from "../../lib/upstream/wire-connection.ts";

export async function query(conn: WireConnection, text: string, params: (string | null)[] = []): Promise<Record<string, string | null>[]> {
  const rows: Record<string, string | null>[] = [];
  let names: string[] = [];
  const utf8 = new TextDecoder();
  await conn.run({
    text,
    params,
    prepare: false,
    columns: (columns) => void (names = columns.map((c) => c.name)),
    row: (values) => void rows.push(Object.fromEntries(values.map((v, i) => [names[i]!, v === null ? null : utf8.decode(v)]))),
  });
  return rows;
}
