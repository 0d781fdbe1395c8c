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

/** A server key: the backend a CancelRequest is for. */
export interface ServerKey {
  readonly pid: number;
  readonly secret: number;
}

export class CancelRequests {
  /**
   * `cancelOnServer` sends one CancelRequest on a connection of its own;
   * `deliveryTimeoutMs` bounds the wait on a server that does not answer
   * (a cut network).
   */
  constructor(
    private readonly cancelOnServer: (key: ServerKey) => Promise<void>,
    private readonly deliveryTimeoutMs: number,
  ) {}

  /**
   * Send a CancelRequest for the statement running on the backend `key`
   * names, unless it has `finished`; the promise settles once the cancel is
   * delivered, failed, or given up on. It never rejects: a cancel that
   * cannot be delivered leaves the statement to the request's cut and the
   * session's statement_timeout.
   */
  send(key: ServerKey, finished: () => boolean): Promise<void> {
    if (finished()) return Promise.resolve();
    const delivered = this.cancelOnServer(key).catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const givenUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.deliveryTimeoutMs);
      (timer as { unref?: () => void }).unref?.();
    });
    return Promise.race([delivered, givenUp]).finally(() => clearTimeout(timer));
  }
}
