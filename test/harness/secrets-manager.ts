// A fake AWS Secrets Manager for tests: an HTTP server on 127.0.0.1 that
// speaks enough of the awsJson1_1 protocol for the real
// @aws-sdk/client-secrets-manager client to call GetSecretValue.
//
// Wire protocol (as the SDK sends and parses it):
//   request:  POST /, Content-Type: application/x-amz-json-1.1,
//             X-Amz-Target: secretsmanager.GetSecretValue, SigV4 Authorization,
//             body {"SecretId": "...", "VersionId"?: "...", "VersionStage"?: "..."}
//   success:  200, {"ARN","Name","VersionId","SecretString","VersionStages":[...],
//             "CreatedDate": <epoch seconds, a number>}
//   error:    4xx, header x-amzn-ErrorType: NAME, body {"__type": NAME, "Message": "..."}.
//             The SDK takes the code from __type (then "code", then the header) and maps
//             modelled names (ResourceNotFoundException, InvalidRequestException, ...) to
//             their classes; unmodelled ones (ThrottlingException, AccessDeniedException)
//             become SecretsManagerServiceException with that name. Its retry strategy
//             treats name "ThrottlingException" as throttling and retries it.
//
// SigV4 signatures are not verified; only the access key id in the Authorization
// header's Credential= is read (for allowAccessKeys).
import { SecretsManagerClient, type SecretsManagerClientConfig } from "@aws-sdk/client-secrets-manager";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

// The SDK warns once per process that its releases from 2027 on need Node 22;
// in tests that is noise (the dependency's range is the place to act on it).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export const FAKE_REGION = "us-east-1";
export const FAKE_ACCOUNT = "000000000000";
export const FAKE_ACCESS_KEY_ID = "test";
export const FAKE_SECRET_ACCESS_KEY = "test";

/** What the next requests should run into; null clears. */
export type FailMode = "throttle" | "deny" | "down" | { readonly delayMs: number } | null;

/** One GetSecretValue as the fake received it (before any injected failure). */
export interface SecretsCall {
  readonly secretId: string;
  readonly versionStage?: string;
  readonly versionId?: string;
  /** Access key id from the SigV4 Authorization header, if one was there. */
  readonly accessKeyId?: string;
  /** Date.now() when the request body had been read. */
  readonly at: number;
}

export interface FakeSecretsManager {
  /** "http://127.0.0.1:PORT" */
  readonly endpoint: string;
  /** Set or rotate a secret: a new VersionId becomes AWSCURRENT, the previous one AWSPREVIOUS. Returns the VersionId. */
  put(name: string, secretString: string): string;
  /** The same with a binary value (SecretBinary, sent base64 as the JSON protocol does blobs; no SecretString). */
  putBinary(name: string, secretBinary: Uint8Array): string;
  /** A rotation's first step (createSecret): a new version labelled AWSPENDING; AWSCURRENT stays. Returns the VersionId. */
  putPending(name: string, secretString: string): string;
  /** A rotation's last step (finishSecret): AWSCURRENT moves to the AWSPENDING version, the old current becomes AWSPREVIOUS. */
  finishRotation(name: string): void;
  /** Delete a secret (by name or ARN) with all its versions; unknown names are ignored. */
  remove(name: string): void;
  /** The full ARN of a secret put earlier (arn:aws:secretsmanager:us-east-1:000000000000:secret:NAME-XXXXXX). */
  arn(name: string): string;
  /** Every GetSecretValue received, in order, including the ones that then failed. */
  readonly calls: readonly SecretsCall[];
  /**
   * Failure injection for subsequent requests: "throttle" (400 ThrottlingException),
   * "deny" (400 AccessDeniedException), "down" (socket destroyed without an answer),
   * { delayMs } (answer normally, that much later), null to clear. With `times`,
   * only for that many requests; without, until cleared.
   */
  fail(mode: FailMode, times?: number): void;
  /** Only callers presenting one of these access key ids are allowed, others get AccessDeniedException; null (default) allows any. */
  allowAccessKeys(ids: readonly string[] | null): void;
  /** Stop listening and drop every connection, pending delayed answers included. */
  close(): Promise<void>;
}

interface Version {
  readonly id: string;
  readonly value: { readonly string: string } | { readonly binary: Uint8Array };
  readonly created: Date;
  readonly stages: Set<string>;
}

interface Secret {
  readonly name: string;
  readonly arn: string;
  readonly versions: Map<string, Version>;
}

const JSON_11 = "application/x-amz-json-1.1";
const TARGET_PREFIX = "secretsmanager.";
const NOT_FOUND = "Secrets Manager can't find the specified secret.";
const ARN_PREFIX = `arn:aws:secretsmanager:${FAKE_REGION}:${FAKE_ACCOUNT}:secret:`;

class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

function arnSuffix(): string {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let s = "";
  for (let i = 0; i < 6; i++) s += letters[Math.floor(Math.random() * letters.length)];
  return s;
}

function accessKeyOf(req: IncomingMessage): string | undefined {
  const m = /Credential=([^/,\s]+)\//.exec(req.headers.authorization ?? "");
  return m?.[1];
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": JSON_11,
    "content-length": String(Buffer.byteLength(text)),
    "x-amzn-requestid": randomUUID(),
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, e: ServiceError): void {
  send(res, e.status, { __type: e.type, Message: e.message }, { "x-amzn-errortype": e.type });
}

const optionalString = (v: unknown, field: string): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new ServiceError("InvalidParameterException", `${field} must be a string.`);
  return v;
};

export async function startFakeSecretsManager(): Promise<FakeSecretsManager> {
  const secrets = new Map<string, Secret>();
  const calls: SecretsCall[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let failure: { mode: Exclude<FailMode, null>; left: number | undefined } | null = null;
  let allowed: ReadonlySet<string> | null = null;

  const find = (id: string): Secret | undefined => {
    const byName = secrets.get(id);
    if (byName) return byName;
    if (!id.startsWith(ARN_PREFIX)) return undefined;
    // A full ARN, or a partial one without the random six-character suffix.
    for (const s of secrets.values()) if (s.arn === id || `${ARN_PREFIX}${s.name}` === id) return s;
    return undefined;
  };

  const takeFailure = (): Exclude<FailMode, null> | null => {
    if (!failure) return null;
    const { mode } = failure;
    if (failure.left !== undefined && --failure.left <= 0) failure = null;
    return mode;
  };

  const getSecretValue = (input: Record<string, unknown>, accessKeyId: string | undefined): unknown => {
    const secretId = input.SecretId;
    if (typeof secretId !== "string" || secretId === "") {
      throw new ServiceError("InvalidParameterException", "You must provide a SecretId.");
    }
    const versionId = optionalString(input.VersionId, "VersionId");
    const versionStage = optionalString(input.VersionStage, "VersionStage");
    const secret = find(secretId);
    if (allowed && (accessKeyId === undefined || !allowed.has(accessKeyId))) {
      const resource = secret?.arn ?? secretId;
      throw new ServiceError(
        "AccessDeniedException",
        `User: arn:aws:iam::${FAKE_ACCOUNT}:user/${accessKeyId ?? "anonymous"} is not authorized to perform: ` +
          `secretsmanager:GetSecretValue on resource: ${resource} because no identity-based policy allows the secretsmanager:GetSecretValue action`,
      );
    }
    if (!secret) throw new ServiceError("ResourceNotFoundException", NOT_FOUND);
    let version: Version | undefined;
    if (versionId !== undefined) {
      version = secret.versions.get(versionId);
      if (!version) {
        throw new ServiceError("ResourceNotFoundException", `Secrets Manager can't find the specified secret value for VersionId: ${versionId}`);
      }
      if (versionStage !== undefined && !version.stages.has(versionStage)) {
        throw new ServiceError("InvalidRequestException", "You provided a VersionStage that is not associated to the provided VersionId.");
      }
    } else {
      const stage = versionStage ?? "AWSCURRENT";
      version = [...secret.versions.values()].find((v) => v.stages.has(stage));
      if (!version) {
        throw new ServiceError("ResourceNotFoundException", `Secrets Manager can't find the specified secret value for staging label: ${stage}`);
      }
    }
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.id,
      ...("string" in version.value ? { SecretString: version.value.string } : { SecretBinary: Buffer.from(version.value.binary).toString("base64") }),
      VersionStages: [...version.stages],
      CreatedDate: version.created.getTime() / 1000,
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readBody(req);
    if (req.method !== "POST" || (req.url ?? "/") !== "/") {
      sendError(res, new ServiceError("UnknownOperationException", `${req.method ?? "?"} ${req.url ?? "?"} is not an operation.`, 404));
      return;
    }
    const target = String(req.headers["x-amz-target"] ?? "");
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : "";
    if (operation !== "GetSecretValue") {
      sendError(res, new ServiceError("UnknownOperationException", `Unknown operation: ${target || "(no X-Amz-Target)"}`));
      return;
    }
    if (!String(req.headers["content-type"] ?? "").startsWith(JSON_11)) {
      sendError(res, new ServiceError("SerializationException", `Content-Type must be ${JSON_11}.`));
      return;
    }
    let input: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw === "" ? "{}" : raw);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      input = parsed as Record<string, unknown>;
    } catch {
      sendError(res, new ServiceError("SerializationException", "The request body is not a JSON object."));
      return;
    }
    const accessKeyId = accessKeyOf(req);
    const call: { -readonly [K in keyof SecretsCall]: SecretsCall[K] } = { secretId: String(input.SecretId ?? ""), at: Date.now() };
    if (typeof input.VersionStage === "string") call.versionStage = input.VersionStage;
    if (typeof input.VersionId === "string") call.versionId = input.VersionId;
    if (accessKeyId !== undefined) call.accessKeyId = accessKeyId;
    calls.push(call);

    if (accessKeyId === undefined) {
      sendError(res, new ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token", 403));
      return;
    }
    const mode = takeFailure();
    if (mode === "down") {
      req.socket.destroy();
      return;
    }
    if (mode === "throttle") {
      sendError(res, new ServiceError("ThrottlingException", "Rate exceeded"));
      return;
    }
    if (mode === "deny") {
      sendError(
        res,
        new ServiceError("AccessDeniedException", `User: arn:aws:iam::${FAKE_ACCOUNT}:user/${accessKeyId} is not authorized to perform: secretsmanager:GetSecretValue`),
      );
      return;
    }
    if (mode !== null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, mode.delayMs);
        timers.add(t);
      });
      if (res.destroyed) return;
    }
    try {
      send(res, 200, getSecretValue(input, accessKeyId));
    } catch (e) {
      if (e instanceof ServiceError) sendError(res, e);
      else throw e;
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      send(res, 500, { __type: "InternalServiceError", Message: String(e) }, { "x-amzn-errortype": "InternalServiceError" });
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  const putVersion = (name: string, value: Version["value"]): string => {
    let secret = secrets.get(name);
    if (!secret) {
      secret = { name, arn: `${ARN_PREFIX}${name}-${arnSuffix()}`, versions: new Map() };
      secrets.set(name, secret);
    }
    for (const v of secret.versions.values()) {
      v.stages.delete("AWSPREVIOUS");
      if (v.stages.delete("AWSCURRENT")) v.stages.add("AWSPREVIOUS");
    }
    const id = randomUUID();
    secret.versions.set(id, { id, value, created: new Date(), stages: new Set(["AWSCURRENT"]) });
    return id;
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    put(name, secretString) {
      return putVersion(name, { string: secretString });
    },
    putBinary(name, secretBinary) {
      return putVersion(name, { binary: secretBinary });
    },
    putPending(name, secretString) {
      const secret = secrets.get(name);
      if (!secret) throw new Error(`fake Secrets Manager: no secret ${name} to rotate`);
      for (const v of secret.versions.values()) v.stages.delete("AWSPENDING");
      const id = randomUUID();
      secret.versions.set(id, { id, value: { string: secretString }, created: new Date(), stages: new Set(["AWSPENDING"]) });
      return id;
    },
    finishRotation(name) {
      const secret = secrets.get(name);
      const pending = secret && [...secret.versions.values()].find((v) => v.stages.has("AWSPENDING"));
      if (!secret || !pending) throw new Error(`fake Secrets Manager: no pending version of ${name}`);
      for (const v of secret.versions.values()) {
        v.stages.delete("AWSPREVIOUS");
        if (v.stages.delete("AWSCURRENT")) v.stages.add("AWSPREVIOUS");
      }
      pending.stages.delete("AWSPENDING");
      pending.stages.add("AWSCURRENT");
    },
    remove(name) {
      const s = find(name);
      if (s) secrets.delete(s.name);
    },
    arn(name) {
      const s = find(name);
      if (!s) throw new Error(`fake Secrets Manager: no secret ${name}`);
      return s.arn;
    },
    calls,
    fail(mode, times) {
      failure = mode === null || times === 0 ? null : { mode, left: times };
    },
    allowAccessKeys(ids) {
      allowed = ids === null ? null : new Set(ids);
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

export interface FakeClientOptions {
  /** Total attempts per call, the SDK's own retry strategy deciding; default 1 (no retries). */
  readonly maxAttempts?: number;
  /**
   * Replace the SDK's backoff (up to 1 s, then 2 s, for throttling) by a fixed delay, so retry
   * tests stay fast. The SDK still classifies each error: only the ones it calls THROTTLING or
   * TRANSIENT are retried, at most maxAttempts in all.
   */
  readonly retryDelayMs?: number;
  /** The Node HTTP handler's requestTimeout, made to throw a TimeoutError (by default it only warns). */
  readonly requestTimeoutMs?: number;
  /** Default FAKE_ACCESS_KEY_ID ("test"). */
  readonly accessKeyId?: string;
}

interface RetryToken {
  getRetryCount(): number;
  getRetryDelay(): number;
}

/** A real SDK client configured for the fake (no retries unless asked). */
export function fakeClient(endpoint: string, opts: FakeClientOptions = {}): SecretsManagerClient {
  const maxAttempts = opts.maxAttempts ?? 1;
  const config: SecretsManagerClientConfig = {
    endpoint,
    region: FAKE_REGION,
    credentials: { accessKeyId: opts.accessKeyId ?? FAKE_ACCESS_KEY_ID, secretAccessKey: FAKE_SECRET_ACCESS_KEY },
    maxAttempts,
  };
  if (opts.requestTimeoutMs !== undefined) {
    config.requestHandler = { requestTimeout: opts.requestTimeoutMs, throwOnRequestTimeout: true };
  }
  if (opts.retryDelayMs !== undefined) {
    const delay = opts.retryDelayMs;
    const token = (count: number): RetryToken => ({ getRetryCount: () => count, getRetryDelay: () => delay });
    config.retryStrategy = {
      acquireInitialRetryToken: async () => ({ getRetryCount: () => 0, getRetryDelay: () => 0 }),
      // A refusal is thrown; the SDK's retry middleware then rethrows the operation's own error.
      refreshRetryTokenForRetry: async (previous: RetryToken, info: { errorType: string }) => {
        const next = previous.getRetryCount() + 1;
        if ((info.errorType === "THROTTLING" || info.errorType === "TRANSIENT") && next < maxAttempts) return token(next);
        throw new Error(`no retry for a ${info.errorType} error after ${next} attempt(s)`);
      },
      recordSuccess: () => {},
    };
  }
  return new SecretsManagerClient(config);
}
