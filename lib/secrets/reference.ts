// `secretsmanager:<name-or-arn>[#json-key]`: a secret where the configuration
// would otherwise name a file or hold a literal.

export interface SecretReference {
  readonly secretId: string;
  /** When set, the secret is a JSON object and this key holds the value. */
  readonly key: string | undefined;
  /** The reference as written, for messages (never the value). */
  readonly text: string;
}

const PREFIX = "secretsmanager:";

export function isSecretReference(text: string): boolean {
  return text.startsWith(PREFIX);
}

/** Parse a reference; throws with the reference named when it is malformed. */
export function parseSecretReference(text: string): SecretReference {
  if (!isSecretReference(text)) throw new Error(`not a secret reference: "${text}"`);
  const rest = text.slice(PREFIX.length);
  // ARNs contain colons but never '#': the last '#' separates the JSON key.
  const hash = rest.indexOf("#");
  const secretId = hash < 0 ? rest : rest.slice(0, hash);
  const key = hash < 0 ? undefined : rest.slice(hash + 1);
  if (secretId === "" || key === "") throw new Error(`invalid secret reference "${text}": expected secretsmanager:<name-or-arn>[#json-key]`);
  return { secretId, key, text };
}

/** The value a reference points at, given the secret's text. */
export function selectValue(ref: SecretReference, secretText: string): string {
  if (ref.key === undefined) return secretText;
  let json: unknown;
  try {
    json = JSON.parse(secretText);
  } catch {
    throw new Error(`secret "${ref.secretId}" is not a JSON object, so it has no key "${ref.key}"`);
  }
  const value = typeof json === "object" && json !== null ? (json as Record<string, unknown>)[ref.key] : undefined;
  if (typeof value !== "string") throw new Error(`secret "${ref.secretId}" has no string key "${ref.key}"`);
  return value;
}
