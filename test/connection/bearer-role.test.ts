// The role a bearer token asks for is read from its payload, unverified, only
// to pick the hba line; decoded payloads are remembered by their encoded text.
// What is remembered must never answer for another token's payload, nor make
// a token that is not a compact JWS look like one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { identifyCaller, type CallerSettings } from "../../lib/connection/caller.ts";

const peer = { transport: "host" as const, address: "127.0.0.1", encrypted: false };
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const HEADER = b64({ alg: "ES256", typ: "JWT" });
const settings = (claim: string, fallback?: string): CallerSettings => ({ anonymousUser: undefined, bearerRole: { claim, fallback } });
const roleOf = (token: string, s = settings("role", "fallback")) => identifyCaller(peer, "postgres", `Bearer ${token}`, s).facts.user;

describe("the role a bearer token asks for", () => {
  test("each payload names its own role, however often it was seen and whatever the signature", () => {
    const alice = `${HEADER}.${b64({ sub: "a", role: "alice_role" })}`;
    const bob = `${HEADER}.${b64({ sub: "b", role: "bob_role" })}`;
    for (let i = 0; i < 3; i++) {
      // The same signature under two payloads: the payload decides.
      assert.equal(roleOf(`${alice}.c2ln`), "alice_role");
      assert.equal(roleOf(`${bob}.c2ln`), "bob_role");
      assert.equal(roleOf(`${alice}.b3RoZXI`), "alice_role");
    }
    // A payload seen before, read for another claim (a reload that changed HBAGATE_OAUTH_ROLE_CLAIM).
    assert.equal(roleOf(`${HEADER}.${b64({ sub: "a", role: "alice_role" })}.c2ln`, settings("sub")), "a");
  });

  test("a payload seen in a compact JWS names nothing in a token of another shape", () => {
    const payload = b64({ sub: "c", role: "carol_role" });
    assert.equal(roleOf(`${HEADER}.${payload}.c2ln`), "carol_role");
    // Five segments (a JWE), two, four: no role claim is read, the configured default applies.
    for (const token of [`${HEADER}.${payload}.a.b.c2ln`, `${HEADER}.${payload}`, `${HEADER}.${payload}.c2ln.x`, `.${payload}.`]) {
      assert.equal(roleOf(token), token === `.${payload}.` ? "carol_role" : "fallback", token);
    }
  });

  test("a payload that is not JSON, not an object, or names an empty or non-string role: the default, every time", () => {
    for (const payload of [Buffer.from("{not json").toString("base64url"), b64([1, 2]), b64({ role: "" }), b64({ role: 7 }), "", "e30-_"]) {
      for (let i = 0; i < 2; i++) assert.equal(roleOf(`${HEADER}.${payload}.c2ln`), "fallback", payload);
    }
  });

  test("a role claim is read exactly as the payload has it, cached or not (a lone surrogate stays one)", () => {
    for (const role of ["r\ud800x", "ρόλος-with-a-long-name", "x".repeat(40)]) {
      const token = `${HEADER}.${b64({ role })}.c2ln`;
      for (let i = 0; i < 2; i++) assert.equal(roleOf(token), role);
    }
  });

  test("large payloads are read right too (decoded each time, not kept)", () => {
    const big = { role: "big_role", padding: "x".repeat(10_000) };
    for (let i = 0; i < 2; i++) assert.equal(roleOf(`${HEADER}.${b64(big)}.c2ln`), "big_role");
    assert.equal(roleOf(`${HEADER}.${b64({ ...big, role: "other_role" })}.c2ln`), "other_role");
  });
});
