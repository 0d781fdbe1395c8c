// Waiting for something to happen without guessing how long it takes: poll a
// condition until it holds, up to a bound that only a hang would reach.

export interface EventuallyOptions {
  /** Give up after this long (a bound for hangs, not an expectation of speed). */
  readonly timeoutMs?: number;
  /** Pause between checks. */
  readonly intervalMs?: number;
  /** What was awaited, for the error. */
  readonly what?: string;
}

/**
 * Calls `check` until it returns a value other than undefined/false (which is
 * returned), or throws once `timeoutMs` has passed, naming `what` and the last
 * error `check` threw (a throwing check counts as "not yet").
 */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: EventuallyOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? `: last check threw ${last.message}` : last !== undefined ? `: last check threw ${String(last)}` : "";
      throw new Error(`gave up after ${timeoutMs} ms waiting for ${opts.what ?? "a condition"}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
