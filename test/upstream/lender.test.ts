// A pool's connections lent one request at a time, without a server: the
// order waiters are served in, the bounds, and what is closed. (The same
// bounds against a real PostgreSQL: test/reliability/fair-use.test.ts.)
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { PoolConnection } from "../../lib/upstream/pool-connection.ts";
import { ConnectionBudget } from "../../lib/upstream/connection-budget.ts";
import { Lender, type Connection, type Coordinator } from "../../lib/upstream/lender.ts";
import { WaitingRoom } from "../../lib/upstream/waiting-room.ts";
import { GatewayError } from "../../lib/errors.ts";

const rejectsWith53300 = async (wait: unknown, detail: RegExp) => {
  assert.ok(wait instanceof Promise, "expected a wait");
  await assert.rejects(wait, (err: unknown) => err instanceof GatewayError && err.code === "53300" && detail.test(err.fields.detail ?? ""));
};

function setup(o: { max?: number; perIdentity?: number; maxTotal?: number; room?: WaitingRoom } = {}) {
  const budget = new ConnectionBudget({ maxTotal: o.maxTotal ?? 100, maxPerRole: 100, loginReserve: 0 });
  const held = new Map<string, number>();
  let lender: Lender | undefined;
  // One pool: a freed place goes to its own waiters.
  const coordinator: Coordinator = {
    budget,
    room: o.room ?? new WaitingRoom(10, 5_000),
    changed: () => lender?.serve(),
    owedElsewhere: () => false,
    held: (identity) => held.get(identity) ?? 0,
    hold: (identity, delta) => void held.set(identity, (held.get(identity) ?? 0) + delta),
  };
  let ended = 0;
  let made = 0;
  const open = () => ({ id: ++made, end: async () => void ended++ }) as unknown as PoolConnection;
  lender = new Lender("r", { max: o.max ?? 2, perIdentity: o.perIdentity ?? 100, maxLifetimeMs: 60_000 }, open, coordinator);
  const take = (identity?: string) => lender.take(identity);
  return { lender, budget, take, made: () => made, ended: () => ended };
}
const id = (c: Connection) => (c.link as unknown as { id: number }).id;

describe("lending a pool's connections", () => {
  test("free connections are lent at once, new ones opened up to the bound; then waiters are served first come first served", async () => {
    const { lender, take, made } = setup({ max: 2 });
    const a = take() as Connection;
    const b = take() as Connection;
    assert.equal(made(), 2);
    const order: number[] = [];
    const first = (take() as Promise<Connection>).then((c) => order.push(id(c)));
    const second = (take() as Promise<Connection>).then((c) => order.push(id(c)));
    lender.give(b, undefined, true);
    await first;
    assert.deepEqual(order, [id(b)], "one connection given back lets one waiter in");
    lender.give(a, undefined, true);
    await second;
    assert.deepEqual(order, [id(b), id(a)]);
    assert.equal(made(), 2, "no connection beyond the bound");
  });

  test("a connection that is not reusable is closed, and counted until it has closed", async () => {
    const { lender, take, budget, ended } = setup({ max: 1 });
    const a = take() as Connection;
    assert.equal(budget.open, 1);
    const next = take() as Promise<Connection>;
    lender.give(a, undefined, false);
    assert.equal(budget.open, 1, "still counted while it closes");
    const b = await next;
    assert.notEqual(id(b), id(a), "the waiter got a new connection, not the closed one");
    assert.equal(ended(), 1);
    assert.equal(budget.open, 1);
  });

  test("the waiting room is shared and bounded in count", async () => {
    const room = new WaitingRoom(1, 5_000);
    const one = setup({ max: 1, room });
    const two = setup({ max: 1, room });
    const held = one.take() as Connection;
    two.take();
    const waiting = one.take();
    assert.ok(waiting instanceof Promise);
    assert.equal(room.size, 1);
    await rejectsWith53300(two.take(), /wait queue is full/);
    one.lender.give(held, undefined, true);
    await waiting;
    assert.equal(room.size, 0, "a waiter let in leaves the room");
  });

  test("a wait is bounded in time, and a waiter who gave up is never handed a connection", async () => {
    const room = new WaitingRoom(10, 30);
    const { lender, take } = setup({ max: 1, room });
    const a = take() as Connection;
    await rejectsWith53300(take(), /no connection became free in time/);
    assert.equal(room.size, 0);
    lender.give(a, undefined, true);
    assert.equal(id(take() as Connection), id(a), "the connection given back is free again");
  });

  test("an identity at its bound waits while another identity behind it goes first", async () => {
    const { lender, take } = setup({ max: 3, perIdentity: 1 });
    const a1 = take("alice") as Connection;
    const a2 = take("alice");
    assert.ok(a2 instanceof Promise, "alice's second request waits");
    let bobIn = false;
    void Promise.resolve(take("bob")).then(() => (bobIn = true));
    await new Promise((r) => setImmediate(r));
    assert.ok(bobIn, "bob is not held up behind alice");
    let aliceIn = false;
    void a2.then(() => (aliceIn = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(aliceIn, false, "alice still waits though a connection is free");
    lender.give(a1, "alice", true);
    await a2;
  });

  test("the total bound stops new connections; a connection given back serves the waiter", async () => {
    const { lender, take, budget } = setup({ max: 5, maxTotal: 1 });
    const a = take() as Connection;
    const waiting = take();
    assert.ok(waiting instanceof Promise);
    assert.equal(budget.fullFor("r"), "total");
    lender.give(a, undefined, true);
    assert.equal(id(await waiting), id(a));
  });
});

describe("the connection budget", () => {
  test("the gateway's own connections never leave requests without a place; a total that would is refused", () => {
    const budget = new ConnectionBudget({ maxTotal: 3, maxPerRole: 10, loginReserve: 2 });
    budget.openForGood();
    // 3 in all, 1 the gateway's own: the reserve shrinks to 1 so that requests keep one place.
    assert.equal(budget.tryOpen("r"), true);
    assert.equal(budget.tryOpen("r"), false);
    assert.equal(budget.tryOpenLogin(), true);
    assert.equal(budget.tryOpenLogin(), false);
    const tight = new ConnectionBudget({ maxTotal: 1, maxPerRole: 10, loginReserve: 0 });
    assert.throws(() => tight.openForGood(), /HBAGATE_POOL_MAX_TOTAL=1 leaves no connection for requests/);
  });
});
