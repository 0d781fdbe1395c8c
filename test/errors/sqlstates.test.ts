// The gateway's own SQLSTATEs are a closed set (lib/errors.ts): gatewayError
// takes only a code named in SQLSTATE, so a new refusal gets a name and an
// HTTP status on purpose. The type check (`tsc --noEmit`, part of npm test)
// fails if an unnamed code is accepted again (the @ts-expect-error below
// would then be unused).
import assert from "node:assert/strict";
import { test } from "node:test";
import { gatewayError, SQLSTATE } from "../../lib/errors.ts";
import { httpStatus } from "../../lib/http/status.ts";

test("gatewayError takes only the named SQLSTATEs", () => {
  // @ts-expect-error: "12345" is not one of the gateway's SQLSTATEs.
  const unnamed = () => gatewayError("12345", "an unnamed refusal");
  assert.equal(typeof unnamed, "function");
  assert.equal(gatewayError(SQLSTATE.undefinedObject, "no such endpoint").code, "42704");
});

test("every named SQLSTATE is five characters, unique, and has an HTTP status", () => {
  const codes = Object.values(SQLSTATE);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of codes) {
    assert.match(code, /^[0-9A-Z]{5}$/);
    const status = httpStatus(code);
    assert.ok(status >= 400 && status < 600, `${code}: ${status}`);
  }
  // The ones whose status is chosen rather than by class.
  assert.equal(httpStatus(SQLSTATE.sqlserverRejectedEstablishment), 429);
  assert.equal(httpStatus(SQLSTATE.configurationLimitExceeded), 507);
  assert.equal(httpStatus(SQLSTATE.transactionResolutionUnknown), 502);
  assert.equal(httpStatus(SQLSTATE.badCopyFileFormat), 415);
});
