// The brute-force brake's state shared between gateway instances (Lambda runs
// many, each with its own memory): a pair locked on one instance is locked on
// all. The per-instance limiter (failure-limiter.ts) always runs; this adds
// the failures every instance has seen. Each verification about to run is
// counted first, atomically (a cached success pays nothing): instances racing
// with guesses of one pair cannot all read "not locked" and all verify, since
// each attempt takes its place in the count before it runs. A success clears
// the count. A store that cannot answer changes nothing: the per-instance
// limiter still holds.

/** Where the pair stands across instances, as far as the store knows. */
export interface SharedStanding {
  /** Milliseconds the pair stays locked (0: not locked). */
  readonly lockedMs: number;
  /** Failures counted in the current window, on any instance. */
  readonly failures: number;
}

export interface SharedFailures {
  /**
   * Count a verification of the pair about to run, as a failure until it
   * succeeds: the pair's standing with it counted. Locked (lockedMs > 0): do
   * not verify. Undefined when the store cannot answer now.
   */
  attempt(address: string, identity: string): Promise<SharedStanding | undefined>;
  /** Count a failure that did not go through attempt() (refused before any verification ran). */
  failed(address: string, identity: string): Promise<void>;
  /** The pair verified: its count starts again. */
  succeeded(address: string, identity: string): Promise<void>;
}
