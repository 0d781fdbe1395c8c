// The watcher that reads which password exchange the server asked for during
// a verification login (the proof behind upstream-login-proof), fed the
// server's bytes in every chunking: whole, byte by byte, several messages in
// one chunk.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ExchangeWatcher } from "../../lib/upstream/login-exchange.ts";
import { MessageWriter } from "../../lib/wire/protocol.ts";

const auth = (code: number, rest: Uint8Array = new Uint8Array(0)) => Buffer.from(new MessageWriter().int32(code).bytes(rest).finish("R"));
const error = Buffer.from(new MessageWriter().bytes(Buffer.from("SFATAL\0C28P01\0Mpassword authentication failed\0\0")).finish("E"));
const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);

/** What the watcher concluded from `stream`, fed in pieces of `size` bytes (0: whole). */
function watch(stream: Buffer, size = 0): string {
  const w = new ExchangeWatcher();
  if (size === 0) w.feed(stream);
  else for (let i = 0; i < stream.length; i += size) w.feed(stream.subarray(i, i + size));
  return w.exchange;
}

describe("ExchangeWatcher", () => {
  const sasl = Buffer.concat([auth(10, Buffer.from("SCRAM-SHA-256\0\0")), auth(11, Buffer.from("r=abc,s=def,i=4096")), auth(12, Buffer.from("v=xyz")), auth(0), ready]);
  const cases: [string, Buffer, string][] = [
    ["SCRAM: SASL, continue, final, ok", sasl, "scram-sha-256"],
    ["MD5", Buffer.concat([auth(5, Buffer.from([1, 2, 3, 4])), auth(0), ready]), "md5"],
    ["cleartext", Buffer.concat([auth(3), auth(0), ready]), "password"],
    ["let in without being asked (trust)", Buffer.concat([auth(0), ready]), "none"],
    ["refused before being asked", Buffer.concat([error]), "none"],
    ["an unknown request (GSS)", Buffer.concat([auth(7), auth(0)]), "other"],
    // Only the first request counts: a later one cannot change what was proven.
    ["a second request after the first", Buffer.concat([auth(5, Buffer.from([1, 2, 3, 4])), auth(3), auth(0)]), "md5"],
    // After AuthenticationOk nothing more is read: a request in the session's data is not the exchange.
    ["a request-shaped message after ok", Buffer.concat([auth(0), auth(3)]), "none"],
    // A length that cannot be a message ends the watch with what was proven so far.
    ["garbage length", Buffer.from([0x52, 0, 0, 0, 1, 0, 0, 0, 3]), "none"],
  ];
  for (const [name, stream, expected] of cases) {
    test(`${name}: ${expected}, however it is chunked`, () => {
      for (const size of [0, 1, 2, 3, 7]) assert.equal(watch(stream, size), expected, `in pieces of ${size}`);
    });
  }
});
