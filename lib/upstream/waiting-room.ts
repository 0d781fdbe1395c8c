// The wait for an upstream connection: bounded in count across every pool
// (postgres.js would queue without bound or time limit) and in time, then 53300.
import { gatewayError, SQLSTATE, type GatewayError } from "../errors.ts";

export const exhausted = (why: string): GatewayError =>
  gatewayError(SQLSTATE.tooManyConnections, "sorry, too many clients already", { detail: `${why}.` });

/** The bound on requests waiting for a place, shared by every pool. */
export class WaitingRoom {
  /** Requests waiting now. */
  size = 0;
  constructor(
    readonly max: number,
    readonly timeoutMs: number,
  ) {}
}
