// A role's upstream password from a secret: the RDS-managed shape
// {"username","password","host","port","dbname","engine"}, or (with a
// #json-key reference) a plain password string.
import { GatewayError, SQLSTATE } from "../errors.ts";
import { parseSecretReference, selectValue } from "./reference.ts";

/**
 * The password for `role`; a secret that does not fit is 08001 (the gateway
 * cannot log in as the role, which is not the caller's doing), whose cause —
 * for the log, naming the secret and its user, never its password — says why.
 */
export function passwordFromSecret(role: string, reference: string, secretText: string): string {
  try {
    return password(role, reference, secretText);
  } catch (err) {
    throw new GatewayError(
      {
        code: SQLSTATE.sqlclientUnableToEstablishSqlconnection,
        message: `the credential configured for role "${role}" cannot be used`,
        hint: "The gateway's role credentials need correcting (see its log).",
      },
      { cause: err },
    );
  }
}

function password(role: string, reference: string, secretText: string): string {
  const ref = parseSecretReference(reference);
  if (ref.key !== undefined) return selectValue(ref, secretText);
  let json: unknown;
  try {
    json = JSON.parse(secretText);
  } catch {
    throw new Error(`secret "${ref.secretId}" is not the RDS credential shape (a JSON object with username and password)`);
  }
  const { username, password } = (json ?? {}) as { username?: unknown; password?: unknown };
  if (typeof password !== "string" || password === "") throw new Error(`secret "${ref.secretId}" has no password`);
  // A secret for another role would log in as that role: refuse rather than switch identity.
  if (typeof username === "string" && username !== role) {
    throw new Error(`secret "${ref.secretId}" is for user "${username}", not role "${role}"`);
  }
  return password;
}
