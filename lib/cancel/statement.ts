// Cancelling a running statement, from the request's side: the caller left
// or the gateway's deadline passed -> a CancelRequest for exactly that
// statement (cancel-requests.ts), the connection held until it has landed,
// and the connection cut if nothing answers.
import { gatewayError, SQLSTATE } from "../errors.ts";
import type { CancelRequests, ServerKey } from "./cancel-requests.ts";

/**
 * Whether the caller is still there. Asking the runtime for a request's
 * AbortSignal costs an AbortController and listeners per request, and nearly
 * every statement is done long before a disconnect could matter: a statement
 * starts watching only once it has run for WATCH_AFTER_MS. A caller who left
 * earlier is still seen then (the runtime keeps the reason), so the statement
 * is cancelled at most that much later. The same signal carries the gateway's
 * own deadline for the request (an AbortSignal.timeout), so a session whose
 * statement_timeout a caller lifted is still bounded.
 */
export type Disconnect = () => AbortSignal;
const WATCH_AFTER_MS = 20;

const disconnected = () => gatewayError(SQLSTATE.queryCanceled, "canceling statement due to client disconnect");

/** The request's signal fired: the caller left, or the gateway's own deadline passed (a TimeoutError). */
export const cancelledBy = (signal: AbortSignal | undefined) =>
  (signal?.reason as { name?: string } | undefined)?.name === "TimeoutError"
    ? gatewayError(SQLSTATE.queryCanceled, "canceling statement due to the gateway's request timeout", {
        hint: "HBAGATE_REQUEST_TIMEOUT_MS bounds every request, whatever the session's statement_timeout says.",
      })
    : disconnected();

/**
 * A statement still running this long after its cancel was sent is cut off:
 * its connection is ended (a server or network that went silent answers
 * neither the statement nor the cancel).
 */
const CUT_AFTER_MS = 5000;

/** A caller who goes away cancels the statement on the server (a CancelRequest), not just the wait. */
export async function cancellable<T>(watch: Watch | undefined, cancel: () => void, cut: () => void, run: () => Promise<T>): Promise<T> {
  if (!watch) return run();
  if (watch.signal?.aborted) throw cancelledBy(watch.signal);
  let signal: AbortSignal | undefined;
  let cutTimer: ReturnType<typeof setTimeout> | undefined;
  const abort = () => {
    cancel();
    cutTimer = setTimeout(cut, CUT_AFTER_MS);
  };
  const timer = setTimeout(() => {
    signal = watch.signal ??= watch.disconnect();
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  }, WATCH_AFTER_MS);
  try {
    return await run();
  } finally {
    clearTimeout(timer);
    clearTimeout(cutTimer);
    signal?.removeEventListener("abort", abort);
  }
}

/** One request's watch, shared by the statements of a batch. */
export interface Watch {
  readonly disconnect: Disconnect;
  signal?: AbortSignal;
}

/** A statement's own cancel (caller gone, limit passed): sent at most once, and waited for. */
export class OwnCancel {
  sent: Promise<void> | undefined;
  finished = false;
  constructor(
    private readonly key: ServerKey,
    private readonly cancels: CancelRequests,
  ) {}
  send(): void {
    this.sent ??= this.cancels.send(this.key, () => this.finished);
  }
}

export const isCancelled = (err: unknown) => (err as { code?: unknown } | null)?.code === SQLSTATE.queryCanceled;
