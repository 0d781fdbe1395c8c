// Self-test of the fake Secrets Manager with the real @aws-sdk/client-secrets-manager
// client: lookups by name, full and partial ARN, VersionId and VersionStage; rotation;
// the SDK's mapping of the fake's errors; its retries on throttling and dropped
// connections; request timeouts, aborts, the access-key allowlist and close().
import {
  GetSecretValueCommand,
  InvalidRequestException,
  ResourceNotFoundException,
  SecretsManagerServiceException,
  type GetSecretValueCommandInput,
  type SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fakeClient, startFakeSecretsManager, type FakeSecretsManager } from "./secrets-manager.ts";
import { eventually } from "./eventually.ts";

/** What the SDK rejects with: an Error, with a Node error code and $metadata on most. */
type Rejection = Error & { code?: string; $metadata?: { httpStatusCode?: number; attempts?: number } };

/** The rejection of p, failing the test if p fulfils. */
async function rejection(p: Promise<unknown>): Promise<Rejection> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Error, `not an Error: ${String(e)}`);
    return e as Rejection;
  }
  assert.fail("expected a rejection");
}

describe("fake Secrets Manager with the real SDK client", () => {
  let sm: FakeSecretsManager;
  let client: SecretsManagerClient;
  const clients: SecretsManagerClient[] = [];
  const make = (opts?: Parameters<typeof fakeClient>[1]) => {
    const c = fakeClient(sm.endpoint, opts);
    clients.push(c);
    return c;
  };
  const get = (input: GetSecretValueCommandInput, c = client) => c.send(new GetSecretValueCommand(input));
  const callsSince = (n: number) => sm.calls.slice(n);

  before(async () => {
    sm = await startFakeSecretsManager();
    client = make();
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await sm.close();
  });

  test("endpoint is an ephemeral port on 127.0.0.1", () => {
    assert.match(sm.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(sm.endpoint, "http://127.0.0.1:0");
  });

  test("put, then get by name", async () => {
    const t0 = Date.now();
    const versionId = sm.put("app/db", '{"password":"s3cret"}');
    const n = sm.calls.length;
    const out = await get({ SecretId: "app/db" });
    assert.equal(out.SecretString, '{"password":"s3cret"}');
    assert.equal(out.Name, "app/db");
    assert.equal(out.VersionId, versionId);
    assert.deepEqual(out.VersionStages, ["AWSCURRENT"]);
    assert.equal(out.ARN, sm.arn("app/db"));
    assert.match(out.ARN ?? "", /^arn:aws:secretsmanager:us-east-1:000000000000:secret:app\/db-[A-Za-z]{6}$/);
    assert.ok(out.CreatedDate instanceof Date, "CreatedDate parsed from epoch seconds");
    assert.ok(Math.abs(out.CreatedDate.getTime() - t0) < 5_000);
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(out.$metadata.attempts, 1);
    const [call, ...rest] = callsSince(n);
    assert.equal(rest.length, 0);
    assert.equal(call?.secretId, "app/db");
    assert.equal(call?.versionStage, undefined);
    assert.equal(call?.versionId, undefined);
    assert.equal(call?.accessKeyId, "test");
    assert.ok(call !== undefined && call.at >= t0);
  });

  test("get by full ARN and by partial ARN", async () => {
    sm.put("by-arn", "v");
    const arn = sm.arn("by-arn");
    const full = await get({ SecretId: arn });
    assert.equal(full.Name, "by-arn");
    assert.equal(full.SecretString, "v");
    const partial = await get({ SecretId: arn.slice(0, -"-AbCdEf".length) });
    assert.equal(partial.ARN, arn);
    assert.equal(sm.calls.at(-1)?.secretId, arn.slice(0, -7));
  });

  test("rotation: AWSCURRENT moves to the new version, AWSPREVIOUS is the old one", async () => {
    const v1 = sm.put("rotating", "one");
    const v2 = sm.put("rotating", "two");
    assert.notEqual(v1, v2);
    const current = await get({ SecretId: "rotating" });
    assert.equal(current.SecretString, "two");
    assert.equal(current.VersionId, v2);
    assert.deepEqual(current.VersionStages, ["AWSCURRENT"]);
    const explicit = await get({ SecretId: "rotating", VersionStage: "AWSCURRENT" });
    assert.equal(explicit.VersionId, v2);
    const previous = await get({ SecretId: "rotating", VersionStage: "AWSPREVIOUS" });
    assert.equal(previous.SecretString, "one");
    assert.equal(previous.VersionId, v1);
    assert.deepEqual(previous.VersionStages, ["AWSPREVIOUS"]);
    const byId = await get({ SecretId: sm.arn("rotating"), VersionId: v1 });
    assert.equal(byId.SecretString, "one");
    const both = await get({ SecretId: "rotating", VersionId: v2, VersionStage: "AWSCURRENT" });
    assert.equal(both.SecretString, "two");
    assert.deepEqual(
      sm.calls.slice(-4).map((c) => [c.versionStage, c.versionId]),
      [["AWSCURRENT", undefined], ["AWSPREVIOUS", undefined], [undefined, v1], ["AWSCURRENT", v2]],
    );

    const v3 = sm.put("rotating", "three");
    const again = await get({ SecretId: "rotating", VersionStage: "AWSPREVIOUS" });
    assert.equal(again.VersionId, v2);
    assert.equal((await get({ SecretId: "rotating" })).VersionId, v3);
  });

  test("unknown secrets and versions: ResourceNotFoundException", async () => {
    const err = await rejection(get({ SecretId: "no/such/secret" }));
    assert.ok(err instanceof ResourceNotFoundException);
    assert.ok(err instanceof SecretsManagerServiceException);
    assert.equal(err.name, "ResourceNotFoundException");
    assert.equal(err.message, "Secrets Manager can't find the specified secret.");
    assert.equal(err.$fault, "client");
    assert.equal(err.$metadata.httpStatusCode, 400);

    sm.put("gone", "x");
    sm.remove("gone");
    assert.ok((await rejection(get({ SecretId: "gone" }))) instanceof ResourceNotFoundException);
    assert.throws(() => sm.arn("gone"));

    sm.put("single", "x");
    const noPrevious = await rejection(get({ SecretId: "single", VersionStage: "AWSPREVIOUS" }));
    assert.ok(noPrevious instanceof ResourceNotFoundException);
    assert.match(noPrevious.message, /staging label: AWSPREVIOUS/);
    const noVersion = await rejection(get({ SecretId: "single", VersionId: "00000000-0000-0000-0000-000000000000" }));
    assert.ok(noVersion instanceof ResourceNotFoundException);

    const v = sm.put("single", "y");
    const mismatch = await rejection(get({ SecretId: "single", VersionId: v, VersionStage: "AWSPREVIOUS" }));
    assert.ok(mismatch instanceof InvalidRequestException);
    assert.equal(mismatch.name, "InvalidRequestException");
  });

  test("throttling with maxAttempts 1: one call, ThrottlingException", async () => {
    sm.put("t", "x");
    const n = sm.calls.length;
    sm.fail("throttle", 1);
    const err = await rejection(get({ SecretId: "t" }));
    // Secrets Manager's model has no ThrottlingException class: the SDK raises its
    // service base exception carrying the wire name.
    assert.ok(err instanceof SecretsManagerServiceException);
    assert.ok(!(err instanceof ResourceNotFoundException));
    assert.equal(err.name, "ThrottlingException");
    assert.equal(err.message, "Rate exceeded");
    assert.equal(err.$metadata.httpStatusCode, 400);
    assert.equal(err.$metadata.attempts, 1);
    assert.equal(callsSince(n).length, 1);
    assert.equal((await get({ SecretId: "t" })).SecretString, "x", "fail(..., 1) lasts one call");
  });

  test("throttling twice, maxAttempts 3: the SDK's retry succeeds on the third call", async () => {
    sm.put("t3", "x");
    const fast = make({ maxAttempts: 3, retryDelayMs: 5 });
    const n = sm.calls.length;
    sm.fail("throttle", 2);
    const out = await get({ SecretId: "t3" }, fast);
    assert.equal(out.SecretString, "x");
    assert.equal(out.$metadata.attempts, 3);
    assert.equal(callsSince(n).length, 3);

    sm.fail("throttle");
    const err = await rejection(get({ SecretId: "t3" }, fast));
    sm.fail(null);
    assert.equal(err.name, "ThrottlingException");
    assert.equal(err.$metadata?.attempts, 3);
    assert.equal(callsSince(n).length, 6);
  });

  test("throttling once, the SDK's default retry strategy with maxAttempts 2", async () => {
    sm.put("t2", "x");
    const standard = make({ maxAttempts: 2 });
    const n = sm.calls.length;
    sm.fail("throttle", 1);
    const out = await get({ SecretId: "t2" }, standard);
    assert.equal(out.$metadata.attempts, 2);
    assert.ok((out.$metadata.totalRetryDelay ?? 0) <= 1_000);
    assert.equal(callsSince(n).length, 2);
  });

  test("AccessDeniedException: injected, and by access-key allowlist", async () => {
    sm.put("guarded", "x");
    sm.fail("deny", 1);
    const err = await rejection(get({ SecretId: "guarded" }));
    assert.ok(err instanceof SecretsManagerServiceException);
    assert.equal(err.name, "AccessDeniedException");
    assert.equal(err.$metadata.httpStatusCode, 400);

    const reader = make({ accessKeyId: "AKIAREADER" });
    sm.allowAccessKeys(["AKIAREADER"]);
    try {
      const denied = await rejection(get({ SecretId: "guarded" }));
      assert.equal(denied.name, "AccessDeniedException");
      assert.match(denied.message, /user\/test is not authorized/);
      // Denied before the lookup, as AWS does: an unknown name is not revealed.
      assert.equal((await rejection(get({ SecretId: "nothing-here" }))).name, "AccessDeniedException");
      assert.equal((await get({ SecretId: "guarded" }, reader)).SecretString, "x");
      assert.equal(sm.calls.at(-1)?.accessKeyId, "AKIAREADER");
    } finally {
      sm.allowAccessKeys(null);
    }
    assert.equal((await get({ SecretId: "guarded" })).SecretString, "x");
  });

  test("a slow answer: delivered late, or cut by requestTimeout or an abort signal", async () => {
    sm.put("slow", "x");
    sm.fail({ delayMs: 150 }, 1);
    let t = Date.now();
    assert.equal((await get({ SecretId: "slow" })).SecretString, "x");
    assert.ok(Date.now() - t >= 140, "delayed");

    const impatient = make({ requestTimeoutMs: 100 });
    sm.fail({ delayMs: 2_000 }, 1);
    t = Date.now();
    const timedOut = await rejection(get({ SecretId: "slow" }, impatient));
    assert.equal(timedOut.name, "TimeoutError");
    assert.equal(timedOut.code, "ETIMEDOUT");
    assert.ok(!(timedOut instanceof SecretsManagerServiceException));
    assert.ok(Date.now() - t < 1_000, `timed out after ${Date.now() - t} ms`);

    sm.fail({ delayMs: 2_000 }, 1);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    t = Date.now();
    const aborted = await rejection(client.send(new GetSecretValueCommand({ SecretId: "slow" }), { abortSignal: abort.signal }));
    assert.equal(aborted.name, "AbortError");
    assert.ok(Date.now() - t < 1_000, `aborted after ${Date.now() - t} ms`);
    assert.equal((await get({ SecretId: "slow" })).SecretString, "x", "delay used up");
  });

  test("down: the connection is dropped without an answer", async () => {
    sm.put("flaky", "x");
    const n = sm.calls.length;
    sm.fail("down", 1);
    const err = await rejection(get({ SecretId: "flaky" }));
    assert.ok(!(err instanceof SecretsManagerServiceException));
    assert.equal(err.code, "ECONNRESET");
    assert.equal(err.$metadata?.attempts, 1);
    assert.equal(callsSince(n).length, 1);

    // A reset connection is a transient error to the SDK: with retries it recovers.
    const retrying = make({ maxAttempts: 2, retryDelayMs: 5 });
    sm.fail("down", 1);
    const out = await get({ SecretId: "flaky" }, retrying);
    assert.equal(out.$metadata.attempts, 2);
    assert.equal(callsSince(n).length, 3);
  });

  test("fail(null) clears a standing failure", async () => {
    sm.put("cleared", "x");
    sm.fail("deny");
    assert.equal((await rejection(get({ SecretId: "cleared" }))).name, "AccessDeniedException");
    assert.equal((await rejection(get({ SecretId: "cleared" }))).name, "AccessDeniedException");
    sm.fail(null);
    assert.equal((await get({ SecretId: "cleared" })).SecretString, "x");
  });

  test("close() does not wait for a delayed answer, and the port stops answering", async () => {
    const other = await startFakeSecretsManager();
    const c = fakeClient(other.endpoint);
    try {
      other.put("s", "x");
      other.fail({ delayMs: 10_000 });
      const pending = rejection(c.send(new GetSecretValueCommand({ SecretId: "s" })));
      await eventually(() => other.calls.length > 0, { intervalMs: 5, what: "the request to reach the fake service" });
      const t = Date.now();
      await other.close();
      assert.ok(Date.now() - t < 1_000);
      assert.equal((await pending).code, "ECONNRESET");
      const refused = await rejection(c.send(new GetSecretValueCommand({ SecretId: "s" })));
      assert.equal(refused.code, "ECONNREFUSED");
    } finally {
      c.destroy();
    }
  });
});
