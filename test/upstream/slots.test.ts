import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Slots, WaitingRoom } from "../../lib/upstream/slots.ts";
import { GatewayError } from "../../lib/errors.ts";

const rejectsWith53300 = async (wait: Promise<void> | undefined, detail: RegExp) => {
  assert.ok(wait, "expected a wait");
  await assert.rejects(wait, (err: unknown) => err instanceof GatewayError && err.code === "53300" && detail.test(err.fields.detail ?? ""));
};

describe("a pool's places for statements", () => {
  test("free places are taken without a wait; the next waits until one is given back, first come first served", async () => {
    const slots = new Slots(2, new WaitingRoom(10, 5_000));
    assert.equal(slots.take(), undefined);
    assert.equal(slots.take(), undefined);
    const order: string[] = [];
    const first = slots.take()!.then(() => order.push("first"));
    const second = slots.take()!.then(() => order.push("second"));
    slots.give();
    await first;
    assert.deepEqual(order, ["first"], "one place given back lets one waiter in");
    slots.give();
    await second;
    assert.deepEqual(order, ["first", "second"]);
    // Both places are held again (by the two who waited): a third waits.
    const third = slots.take();
    assert.ok(third);
    slots.give();
    await third;
    // Back to one holder: the places free up one by one.
    slots.give();
    slots.give();
    assert.equal(slots.take(), undefined);
    assert.equal(slots.take(), undefined);
  });

  test("the waiting room is shared by every pool and bounded in count", async () => {
    const room = new WaitingRoom(1, 5_000);
    const a = new Slots(1, room);
    const b = new Slots(1, room);
    assert.equal(a.take(), undefined);
    assert.equal(b.take(), undefined);
    const waiting = a.take();
    assert.ok(waiting);
    assert.equal(room.size, 1);
    await rejectsWith53300(b.take(), /wait queue is full/);
    a.give();
    await waiting;
    assert.equal(room.size, 0, "a waiter let in leaves the room");
  });

  test("a wait is bounded in time, and a waiter who gave up is never handed a place", async () => {
    const room = new WaitingRoom(10, 30);
    const slots = new Slots(1, room);
    assert.equal(slots.take(), undefined);
    await rejectsWith53300(slots.take(), /no connection became free in time/);
    assert.equal(room.size, 0);
    // The place given back is free again, not handed to the waiter that timed out.
    slots.give();
    assert.equal(slots.take(), undefined);
  });
});
