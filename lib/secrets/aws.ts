// The Secrets Manager side of the secret store: GetSecretValue (AWSCURRENT)
// with the real SDK client. The client is injected (endpoint, region and
// credentials are the caller's business); only GetSecretValue is ever called,
// so `secretsmanager:GetSecretValue` on the named secrets is all it needs.
import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { FetchedSecret, SecretFetcher, VersionStage } from "./secret-store.ts";

export interface AwsFetcherOptions {
  /** Give up on one call after this long (the store retries with backoff). */
  readonly timeoutMs: number;
}

export function awsSecretFetcher(client: Pick<SecretsManagerClient, "send">, options: AwsFetcherOptions): SecretFetcher {
  return async (secretId: string, stage: VersionStage = "AWSCURRENT"): Promise<FetchedSecret> => {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }), {
      abortSignal: AbortSignal.timeout(options.timeoutMs),
    });
    if (out.SecretString === undefined) {
      // Binary secrets are not configuration text, nor a password: said as such, not as "unavailable".
      throw new Error(
        out.SecretBinary === undefined
          ? `secret "${secretId}" has no value (neither SecretString nor SecretBinary)`
          : `secret "${secretId}" is binary (SecretBinary): hbagate reads text secrets only; store the value with --secret-string`,
      );
    }
    return { text: out.SecretString, versionId: out.VersionId ?? "" };
  };
}
