// What new statements on a pool wait for: work in progress that a statement
// starting now could spoil or starve. A cancel on its way to a backend would
// end a statement that started there meanwhile; a batch waiting for a
// connection of its own would wait for ever if single statements kept
// joining the pipelines of every connection.

export class Holds {
  private readonly held = new Set<Promise<void>>();

  /** New statements wait until `work` settles (whichever way). */
  add(work: Promise<unknown>): void {
    const settled: Promise<void> = work.then(
      () => this.release(settled),
      () => this.release(settled),
    );
    this.held.add(settled);
  }

  /** undefined when nothing is held (no await needed); otherwise settles once nothing is. */
  passed(): Promise<void> | undefined {
    return this.held.size === 0 ? undefined : this.drain();
  }

  private release(settled: Promise<void>): void {
    this.held.delete(settled);
  }

  private async drain(): Promise<void> {
    // Work added while waiting is waited for too: it was added for a reason that holds for us.
    while (this.held.size > 0) await Promise.all(this.held);
  }
}
