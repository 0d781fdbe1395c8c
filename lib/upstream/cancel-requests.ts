// CancelRequests sent on one pool. PostgreSQL cancels whatever a backend is
// running when the request arrives, not a particular statement: a cancel sent
// for a statement that finished first would end the next statement on that
// connection, which may be another caller's. The server closes the cancel
// connection only after it has signalled the backend, and a backend that is
// signalled between statements drops the cancel before it reads the next one.
// So a statement's own runner waits for its cancel to be delivered before it
// lets go of the connection, and new statements on the pool wait until no
// cancel is in flight. Cancels are rare (a response limit, a caller gone):
// the common path costs one check of an empty set.

/** The part of a postgres.js query this needs: its canceller, set while it can be cancelled. */
interface Cancellable {
  canceller?: ((query: object) => Promise<void>) | null;
}

export class CancelRequests {
  private readonly inFlight = new Set<Promise<void>>();

  /** `deliveryTimeoutMs` bounds the wait on a server that does not answer (a cut network). */
  constructor(private readonly deliveryTimeoutMs: number) {}

  /**
   * Send a CancelRequest for `query`; the promise settles once it is
   * delivered, failed, or given up on. It never rejects: postgres.js's
   * Query.cancel() drops this promise, and when the server cannot be reached
   * it rejects unhandled, which ends a Node process. A cancel that cannot be
   * delivered leaves the statement to statement_timeout.
   */
  send(query: object): Promise<void> {
    const q = query as Cancellable;
    const canceller = q.canceller;
    if (typeof canceller !== "function") return Promise.resolve();
    q.canceller = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const givenUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.deliveryTimeoutMs);
      (timer as { unref?: () => void }).unref?.();
    });
    const sent: Promise<void> = Promise.race([canceller(query).catch(() => {}), givenUp]).finally(() => {
      clearTimeout(timer);
      this.inFlight.delete(sent);
    });
    this.inFlight.add(sent);
    return sent;
  }

  /** undefined when no cancel is in flight; otherwise settles once none is. */
  settled(): Promise<void> | undefined {
    return this.inFlight.size === 0 ? undefined : this.drain();
  }

  private async drain(): Promise<void> {
    // A cancel sent while waiting is for a statement on another connection, which may finish first.
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }
}
