// Red team (verified-caller cache across a reload): a check that began under
// the configuration a reload replaced must never be remembered under the new
// one. verify() in lib/gateway/connect.ts takes its configuration snapshot
// (rules, verifier file, ident) and then awaits (matchHba's group lookups and
// DNS, the brake's admit(), which a caller can stretch with wrong guesses, a
// session's password prompt). rememberedFinding() used to read the cache's
// epoch only when the method's check started: a reload in that window cleared
// the cache first, the request checked the password against the OLD verifier
// file and remembered the success under the NEW epoch, and every later request
// with the revoked password was admitted from the cache for the whole TTL.
// The epoch is now taken with the snapshot.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailureLimiter } from "../../lib/auth/failure-limiter.ts";
import { VerifiedCallers } from "../../lib/auth/verified-callers.ts";
import { parseVerifierFile, type VerifierFile } from "../../lib/auth/verifier-file.ts";
import { callerFor, type PeerInfo } from "../../lib/connection/caller.ts";
import { gatewayCore, type CoreDeps } from "../../lib/gateway/connect.ts";
import type { HbaRule } from "../../lib/hba/rule.ts";
import { rulesFrom } from "../http/deps.ts";

const peer: PeerInfo = { transport: "host", address: "10.0.0.1", encrypted: false };
const as = (password: string) => callerFor(peer, "postgres", "alice", [{ kind: "password", password }]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(rules: readonly HbaRule[], isMember: CoreDeps["environment"]["isMember"], limiter?: FailureLimiter) {
  let file: VerifierFile = parseVerifierFile("/users.txt", '"alice" "old-pw"\n');
  const cache = new VerifiedCallers({ ttlMs: 60_000, maxEntries: 100 });
  const core = gatewayCore({
    rules: () => rules,
    verifierFile: () => file,
    ident: () => undefined,
    pools: {} as CoreDeps["pools"],
    environment: { isMember },
    ldap: { connectTimeoutMs: 100, operationTimeoutMs: 100, caFile: undefined } as CoreDeps["ldap"],
    verifiedCallers: cache,
    failureLimiter: limiter ?? new FailureLimiter({ slowAfter: 1000, lockAfter: 1000, windowMs: 60_000, lockMs: 60_000, delayStepMs: 0, maxDelayMs: 0, maxEntries: 100 }),
    log: () => {},
  });
  // What assemble.ts's reload does: swap the configuration, then clear the cache.
  const reload = () => {
    file = parseVerifierFile("/users.txt", '"alice" "new-pw"\n'); // alice's old password revoked
    cache.clear();
  };
  const outcome = (p: Promise<unknown>) => p.then(() => "admitted", (e: Error) => `refused: ${e.message}`);
  return { core, reload, outcome };
}

describe("red team: verified-caller cache across a reload", () => {
  test("after a reload that revokes a password, the old password is refused (reload lands while matchHba awaits isMember)", async () => {
    let gate: (() => void) | undefined;
    let inMatch!: () => void;
    const matching = new Promise<void>((r) => (inMatch = r));
    let first = true;
    // alice is in staff; the first lookup (an upstream query in production) is slow.
    const { core, reload, outcome } = setup(rulesFrom("host all +staff 10.0.0.1/32 password\n"), () => {
      if (!first) return true;
      first = false;
      inMatch();
      return new Promise<boolean>((r) => (gate = () => r(true)));
    });
    const inFlight = outcome(core.connect(as("old-pw")));
    await matching;
    reload();
    gate!();
    assert.equal(await inFlight, "admitted"); // began before the reload: fine either way
    // A new request, entirely under the new configuration, with the revoked password.
    const after = await outcome(core.connect(as("old-pw")));
    assert.match(after, /^refused/, "the revoked password was admitted from a success remembered across the reload");
  });

  test("the same through the brute-force brake's wait, which a caller can provoke with wrong guesses", async () => {
    const limiter = new FailureLimiter({ slowAfter: 1, lockAfter: 3, windowMs: 60_000, lockMs: 60_000, delayStepMs: 400, maxDelayMs: 400, maxEntries: 100 });
    const { core, reload, outcome } = setup(rulesFrom("host all all 10.0.0.1/32 password\n"), () => false, limiter);
    assert.match(await outcome(core.connect(as("guess-1"))), /^refused/);
    // The second wrong guess holds the only turn through its 400 ms delay...
    const slowGuess = outcome(core.connect(as("guess-2")));
    await sleep(100);
    // ...so a request with the old password, its configuration already snapshotted, waits in admit().
    const inFlight = outcome(core.connect(as("old-pw")));
    await sleep(50);
    reload(); // the operator revokes the password meanwhile
    assert.match(await slowGuess, /^refused/);
    assert.equal(await inFlight, "admitted");
    const after = await outcome(core.connect(as("old-pw")));
    assert.match(after, /^refused/, "the revoked password was admitted from a success remembered across the reload");
  });

  test("control: without a request in flight, the reload does take effect", async () => {
    const { core, reload, outcome } = setup(rulesFrom("host all all 10.0.0.1/32 password\n"), () => false);
    assert.equal(await outcome(core.connect(as("old-pw"))), "admitted");
    reload();
    assert.match(await outcome(core.connect(as("old-pw"))), /^refused/);
    assert.equal(await outcome(core.connect(as("new-pw"))), "admitted");
  });
});
