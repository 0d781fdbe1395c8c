// `password`, `md5`, `scram-sha-256`: the caller's password, checked against
// the verifier file when one is configured, otherwise by logging in upstream
// as the role (login-proof.ts says what such a login proves).
import { passwordOf } from "../../connection/caller.ts";
import { passwordFailed, refusedBy } from "../messages.ts";
import { verifyByLogin } from "../login-proof.ts";
import { verifyPassword, whyRefused, type PasswordMethod } from "../verify-password.ts";
import { remembered, type MethodCheck } from "./verifiers.ts";

export const checkPassword: MethodCheck<{ readonly name: PasswordMethod }> = async (method, caller, rule, verifiers) => {
  const { database, user } = caller.facts;
  const password = passwordOf(caller);
  // PostgreSQL refuses an empty password before any check.
  const path = verifiers.verifierFile ? "verifier file" : "upstream login";
  if (password === undefined || password === "") throw refusedBy(passwordFailed(user), path, "an empty password is refused before any check");
  return remembered(verifiers, [rule.file, String(rule.line), method.name, database, user], password, async () => {
    if (!verifiers.verifierFile) return verifyByLogin(method.name, database, user, password, verifiers);
    if (!(await verifyPassword(verifiers.verifierFile, method.name, user, password))) {
      throw refusedBy(passwordFailed(user), path, whyRefused(verifiers.verifierFile, method.name, user, password));
    }
  });
};
