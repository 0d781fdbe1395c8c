// Which of a pool's statements run as named prepared statements. A prepared
// statement skips parse analysis and planning on the server. But the
// statements are client SQL, so the set is bounded: a connection keeps every
// statement it prepares for its life (wire-connection.ts), and so does the
// server. Each connection of a pool prepares a
// subset of what the pool allows, so bounding the pool bounds every connection.
//
// A statement is prepared the second time it is seen: a query with inlined
// literals, run once, never takes a slot. Once `max` are prepared, or their
// text reaches `maxBytes`, others run unprepared until the pool is replaced.
//
// The text is bounded as well as the count because every request pays for
// it: the session reset's check reads pg_prepared_statement(), which copies
// every statement's text on each call (session-reset.ts). Measured on
// PostgreSQL 15, a 1-row request cost PostgreSQL 48 µs with the check
// reading one short statement; with 100 statements of 2 KB each on the
// connection, 206 µs, and the request rate halved. Roughly 0.3 µs per
// statement and 0.6 µs per KB of text, on every request.
import { utf8Length } from "../query/limits.ts";

/** Longer statements (UTF-8 bytes, as the server keeps them) are never prepared: their server-side copies would be costly to keep. */
const MAX_PREPARED_BYTES = 16 * 1024;
/** Statements seen once, remembered so a second sighting can be recognised. */
const MAX_CANDIDATES = 1000;
/** The default bound on the prepared statements' text, in UTF-8 bytes (HBAGATE_PREPARED_STATEMENT_BYTES). */
export const DEFAULT_PREPARED_BYTES = 32 * 1024;

export class PreparedStatements {
  private readonly prepared = new Set<string>();
  /** Least recently seen first (a Set iterates in insertion order). */
  private readonly candidates = new Set<string>();
  /** UTF-8 bytes of the prepared statements' text. */
  private bytes = 0;

  constructor(
    private readonly max: number,
    private readonly maxBytes = DEFAULT_PREPARED_BYTES,
  ) {}

  /** How many distinct statements the pool may have prepared. */
  get size(): number {
    return this.prepared.size;
  }

  /** Whether to run `query` as a prepared statement; counts the sighting. */
  shouldPrepare(query: string): boolean {
    if (this.prepared.has(query)) return true;
    // A UTF-16 unit is at least one UTF-8 byte: longer in units is longer in bytes.
    if (this.prepared.size >= this.max || query.length > MAX_PREPARED_BYTES) return false;
    if (this.candidates.delete(query)) {
      // Measured on the second sighting only, the one that would prepare it.
      const size = utf8Length(query);
      if (size > MAX_PREPARED_BYTES || size > this.maxBytes - this.bytes) return false;
      this.bytes += size;
      this.prepared.add(query);
      return true;
    }
    this.candidates.add(query);
    if (this.candidates.size > MAX_CANDIDATES) this.candidates.delete(this.candidates.keys().next().value!);
    return false;
  }

  /**
   * The server did not prepare `query` (its Parse failed: a table not yet
   * created, a syntax error): its place and its bytes are given back, so a
   * statement that never ran cannot keep others unprepared for the pool's
   * life. It is prepared again after two more sightings.
   */
  forget(query: string): void {
    if (this.prepared.delete(query)) this.bytes -= utf8Length(query);
  }
}
