// The protocol pieces alone: messages cut into arbitrary chunks come out
// whole and in order, the boundary scanner agrees with them, and lengths that
// cannot be are refused before anything is kept.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { BoundaryScanner } from "../../lib/wire/boundaries.ts";
import { MessageReader, MessageWriter, parseStartup, PROTOCOL_3_0 } from "../../lib/wire/protocol.ts";

const message = fc.record({ type: fc.constantFrom(..."QPBEDSHXpdcf"), body: fc.uint8Array({ maxLength: 300 }) });

/** `bytes` cut at the given points. */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of at) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out;
}

describe("wire protocol framing", () => {
  test("messages cut anywhere come out whole, in order; the scanner sees each start and ends at a boundary", () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (messages, points) => {
        const encoded = messages.map((m) => new MessageWriter().bytes(m.body).finish(m.type));
        const all = new Uint8Array(encoded.reduce((n, e) => n + e.length, 0));
        let at = 0;
        for (const e of encoded) {
          all.set(e, at);
          at += e.length;
        }
        // Copies (a session's reader) and views of the chunks (a pool connection's): the same messages.
        const reader = new MessageReader(1 << 20, { copy: points.length % 2 === 0 });
        const scanner = new BoundaryScanner(1 << 20);
        const out: { type: number; body: number[] }[] = [];
        const started: number[] = [];
        for (const chunk of cut(all, points)) {
          reader.push(chunk);
          started.push(...scanner.scan(chunk)!);
          for (let m = reader.next(); m; m = reader.next()) out.push({ type: m.type, body: [...m.body] });
        }
        assert.deepEqual(out, messages.map((m) => ({ type: m.type.charCodeAt(0), body: [...m.body] })));
        assert.deepEqual(started, out.map((m) => m.type));
        assert.equal(scanner.atBoundary, true);
        assert.equal(reader.pending, 0);
      }),
      { numRuns: 300 },
    );
  });

  test("a length below 4 or past the bound is refused from the header alone", () => {
    const small = new MessageReader(1024);
    small.push(new Uint8Array([0x51, 0, 0, 0, 3]));
    assert.throws(() => small.next(), (e: { code?: string }) => e.code === "08P01");
    const big = new MessageReader(1024);
    big.push(new Uint8Array([0x51, 0, 0, 0x10, 0]));
    assert.throws(() => big.next(), (e: { code?: string }) => e.code === "54000");
    assert.equal(new BoundaryScanner(1024).scan(new Uint8Array([0x51, 0, 0, 0x10, 0])), undefined);
    // A length with its top bit set is negative, as PostgreSQL reads an int32: a violation, not a large message.
    const negative = new MessageReader(1 << 30);
    negative.push(new Uint8Array([0x51, 0x80, 0, 0, 0]));
    assert.throws(() => negative.next(), (e: { code?: string }) => e.code === "08P01");
  });

  test("startup packets: parameters in order, layout and UTF-8 checked", () => {
    const w = new MessageWriter().int32(PROTOCOL_3_0).cstring("user").cstring("ann").cstring("options").cstring("-c x=1");
    const p = parseStartup(w.bytes(new Uint8Array(1)).finish());
    assert.equal(p.kind, "startup");
    assert.deepEqual(p.kind === "startup" ? [...p.parameters] : [], [["user", "ann"], ["options", "-c x=1"]]);
    // No terminator, a name without a value, invalid UTF-8.
    assert.throws(() => parseStartup(new MessageWriter().int32(PROTOCOL_3_0).cstring("user").cstring("ann").finish()), (e: { code?: string }) => e.code === "08P01");
    assert.throws(() => parseStartup(new MessageWriter().int32(PROTOCOL_3_0).cstring("user").bytes(new Uint8Array(1)).finish()), (e: { code?: string }) => e.code === "08P01");
    assert.throws(() => parseStartup(new MessageWriter().int32(PROTOCOL_3_0).cstring("user").bytes(new Uint8Array([0xff, 0])).bytes(new Uint8Array(1)).finish()), (e: { code?: string }) => e.code === "08P01");
  });
});
