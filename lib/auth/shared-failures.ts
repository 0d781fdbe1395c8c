// The brute-force brake's state shared between gateway instances (Lambda runs
// many, each with its own memory): a pair locked on one instance is locked on
// all. The per-instance limiter (failure-limiter.ts) always runs; this adds
// the failures every instance has seen. Asked only when a verification is
// about to run (a cached success pays nothing), and told each failure. A store
// that cannot answer changes nothing: the per-instance limiter still holds.

/** Where the pair stands across instances, as far as the store knows. */
export interface SharedStanding {
  /** Milliseconds the pair stays locked (0: not locked). */
  readonly lockedMs: number;
  /** Failures counted in the current window, on any instance. */
  readonly failures: number;
}

export interface SharedFailures {
  /** The pair's standing, or undefined when the store cannot answer now. */
  standing(address: string, identity: string): Promise<SharedStanding | undefined>;
  /** Count a failure for the pair (and lock it once it reaches the limit). */
  failed(address: string, identity: string): Promise<void>;
  /** The pair verified: its count starts again. */
  succeeded(address: string, identity: string): Promise<void>;
}
