// Where one message ends and the next begins in a relayed byte stream, without
// copying or holding it: the relay needs only to know when it may speak (at a
// boundary), what has started (a query, a Sync, a ReadyForQuery) and whether a
// message announces more than the bound. Headers split across chunks are kept.

export class BoundaryScanner {
  private readonly header = new Uint8Array(5);
  private headerHave = 0;
  /** Body bytes of the current message not yet seen. */
  private remaining = 0;
  private current = 0;
  /** The type of the last message seen whole. */
  lastType: number | undefined;
  /** The transaction status of the last ReadyForQuery (I, T or E). */
  lastReady: number | undefined;

  constructor(private readonly maxBytes: number) {}

  get atBoundary(): boolean {
    return this.headerHave === 0 && this.remaining === 0;
  }

  /** The types of the messages that start in `chunk`; undefined when one announces an invalid length or more than the bound. */
  scan(chunk: Uint8Array): number[] | undefined {
    const started: number[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining > 0) {
        if (this.current === 0x5a /* Z */) this.lastReady = chunk[at];
        const n = Math.min(this.remaining, chunk.length - at);
        at += n;
        this.remaining -= n;
        if (this.remaining === 0) this.lastType = this.current;
        continue;
      }
      const n = Math.min(5 - this.headerHave, chunk.length - at);
      this.header.set(chunk.subarray(at, at + n), this.headerHave);
      this.headerHave += n;
      at += n;
      if (this.headerHave < 5) break;
      this.headerHave = 0;
      const length = new DataView(this.header.buffer).getInt32(1);
      if (length < 4 || length + 1 > this.maxBytes) return undefined;
      this.current = this.header[0]!;
      started.push(this.current);
      this.remaining = length - 4;
      if (this.remaining === 0) this.lastType = this.current;
    }
    return started;
  }
}
