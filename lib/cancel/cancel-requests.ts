// CancelRequests sent on one pool. PostgreSQL cancels whatever a backend is
// running when the request arrives, not a particular statement: a cancel sent
// for a statement that finished first would end the next statement on that
// connection, which may be another caller's. The server closes the cancel
// connection only after it has signalled the backend, and a backend that is
// signalled between statements drops the cancel before it reads the next one.
// So a statement's own runner waits for its cancel to be delivered before it
// lets go of the connection. Each request has its connection to itself until
// its cancel has landed and its session has been reset (session.ts), so a
// cancel ends its own request's work or nothing: nothing else on the pool
// needs to wait for it.

/** The parts of a postgres.js query this reads: its canceller, its backend, whether it is the one running. */
interface Cancellable {
  canceller?: ((query: object) => Promise<void>) | null;
  /** null until the query is handed to a connection. */
  state?: { readonly pid?: number } | null;
  active?: boolean;
}

/** How often a statement queued behind another on its connection is looked at, to cancel it once it runs. */
const PIPELINE_POLL_MS = 5;

export class CancelRequests {
  /** `deliveryTimeoutMs` bounds the wait on a server that does not answer (a cut network). */
  constructor(private readonly deliveryTimeoutMs: number) {}

  /**
   * Send a CancelRequest for `query`; the promise settles once it is
   * delivered, failed, or given up on. It never rejects: postgres.js's
   * Query.cancel() drops this promise, and when the server cannot be reached
   * it rejects unhandled, which ends a Node process. A cancel that cannot be
   * delivered leaves the statement to statement_timeout.
   */
  send(query: object, finished: () => boolean): Promise<void> {
    const q = query as Cancellable;
    if (typeof q.canceller !== "function") return Promise.resolve();
    // Queued behind another statement in its connection's pipeline: postgres.js would skip it and
    // take the server's answer to it for the next statement's. It is cancelled once it runs.
    if (q.state && !q.active) return this.once(q, finished);
    const canceller = q.canceller;
    q.canceller = null;
    const delivered = canceller(query).catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const givenUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.deliveryTimeoutMs);
      (timer as { unref?: () => void }).unref?.();
    });
    return Promise.race([delivered, givenUp]).finally(() => clearTimeout(timer));
  }

  private once(q: Cancellable, finished: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const poll = () => {
        if (finished()) resolve();
        else if (q.active) void this.send(q, finished).then(resolve);
        else setTimeout(poll, PIPELINE_POLL_MS);
      };
      setTimeout(poll, PIPELINE_POLL_MS);
    });
  }
}
