// Which of a pool's statements run as named prepared statements. A prepared
// statement skips parse analysis and planning on the server. But the
// statements are client SQL, so the set is bounded: a connection keeps every
// statement it prepares for its life (wire-connection.ts), and so does the
// server. Each connection of a pool prepares a
// subset of what the pool allows, so bounding the pool bounds every connection.
//
// A statement is prepared the second time it is seen: a query with inlined
// literals, run once, never takes a slot. Once `max` are prepared, others run
// unprepared until the pool is replaced.

/** Longer statements are never prepared: their server-side copies would be costly to keep. */
const MAX_PREPARED_LENGTH = 16 * 1024;
/** Statements seen once, remembered so a second sighting can be recognised. */
const MAX_CANDIDATES = 1000;

export class PreparedStatements {
  private readonly prepared = new Set<string>();
  /** Least recently seen first (a Set iterates in insertion order). */
  private readonly candidates = new Set<string>();

  constructor(private readonly max: number) {}

  /** How many distinct statements the pool may have prepared. */
  get size(): number {
    return this.prepared.size;
  }

  /** Whether to run `query` as a prepared statement; counts the sighting. */
  shouldPrepare(query: string): boolean {
    if (this.prepared.has(query)) return true;
    if (this.prepared.size >= this.max || query.length > MAX_PREPARED_LENGTH) return false;
    if (this.candidates.delete(query)) {
      this.prepared.add(query);
      return true;
    }
    this.candidates.add(query);
    if (this.candidates.size > MAX_CANDIDATES) this.candidates.delete(this.candidates.keys().next().value!);
    return false;
  }
}
