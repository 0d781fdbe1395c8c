// How many statements a pool has in flight, and the wait for a place among
// them. postgres.js would queue without bound or time limit; here the wait is
// bounded in count across every pool (a WaitingRoom) and in time, then 53300.
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

/** One pool's places: `capacity` statements in flight (connections × pipeline depth). */
export class Slots {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly capacity: number,
    private readonly room: WaitingRoom,
  ) {}

  /**
   * A place for one statement: undefined when one is free now (nothing to
   * await on the common path), otherwise a wait that settles once a finishing
   * request hands its place over, or fails with 53300.
   */
  take(): Promise<void> | undefined {
    if (this.active < this.capacity) {
      this.active++;
      return undefined;
    }
    const room = this.room;
    if (room.size >= room.max) return Promise.reject(exhausted("the wait queue is full"));
    room.size++;
    return new Promise<void>((resolve, reject) => {
      const granted = () => {
        clearTimeout(timer);
        room.size--;
        resolve(); // the place is handed over: `active` stays the same
      };
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(granted);
        if (i >= 0) this.queue.splice(i, 1);
        room.size--;
        reject(exhausted("no connection became free in time"));
      }, room.timeoutMs);
      this.queue.push(granted);
    });
  }

  /** A statement is done: its place goes to the longest waiter, or is free again. */
  give(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.active--;
  }
}
