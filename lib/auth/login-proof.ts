// Password verification by logging in upstream, and what such a login proves.
//
// A login that the server let in proves the caller's password only when the
// server asked for it, and proves what the line's method demands only when
// the exchange could have been the one PostgreSQL would use for that line
// (PostgreSQL 18, 20.5 "Password Authentication"):
// - `scram-sha-256` needs a SCRAM secret stored: only a SCRAM exchange shows
//   one (an MD5 exchange means an MD5 hash is stored; a cleartext one says
//   nothing about the stored form);
// - `md5` and `password` accept either stored form: any exchange that checked
//   the stored password will do;
// - a cleartext request is also what `ldap`, `pam`, `radius` and `bsd` lines
//   send, which check some other password: PostgreSQL 16+ tells them apart
//   through `system_user` (`password:alice`); before 16 it cannot be told, so
//   it proves nothing.
// Anything else (trust, cert, peer upstream: no request at all) proves nothing.
import type { LoginOutcome } from "../upstream/login-exchange.ts";
import { passwordFailed, refusedBy } from "./messages.ts";
import type { PasswordMethod } from "./verify-password.ts";

/** What the operator can change so that upstream logins prove passwords. */
const ADVICE =
  "require scram-sha-256 in the upstream's pg_hba.conf for the gateway's address, or set HBAGATE_VERIFIER_FILE so the gateway checks passwords itself";

/** Why a successful login does not prove what `method` demands, or undefined when it does. */
export function unprovenBecause(method: PasswordMethod, login: Extract<LoginOutcome, { ok: true }>): string | undefined {
  switch (login.exchange) {
    case "none":
      return `the upstream let the role in without asking for a password; ${ADVICE}`;
    case "other":
      return `the upstream asked for an authentication exchange that is not a password check; ${ADVICE}`;
    case "scram-sha-256":
      return undefined;
    case "md5":
      return method === "scram-sha-256"
        ? `the upstream checked the password with an MD5 exchange: the role's password is stored as an MD5 hash, which a scram-sha-256 line refuses (as PostgreSQL does); store it as SCRAM (password_encryption = scram-sha-256, then ALTER ROLE … PASSWORD)`
        : undefined;
    case "password":
      if (method === "scram-sha-256") {
        return `the upstream asked for a cleartext password, which does not show that a SCRAM secret is stored; ${ADVICE}`;
      }
      if (login.systemUser === undefined) {
        return `the upstream asked for a cleartext password and, before PostgreSQL 16, cannot say whether it checked the stored password or an ldap/pam/radius one; ${ADVICE}`;
      }
      if (login.systemUser === null || !login.systemUser.startsWith("password:")) {
        return `the upstream checked a cleartext password with "${login.systemUser?.split(":")[0] ?? "no"}" authentication, not the stored password; ${ADVICE}`;
      }
      return undefined;
    default: {
      const unreachable: never = login.exchange;
      throw unreachable;
    }
  }
}

export interface LoginVerifier {
  /** Log in upstream as `user` with `password` (a connection of its own). */
  upstreamLogin(database: string, user: string, password: string): Promise<LoginOutcome>;
  log(event: { level: string; msg: string; [k: string]: string | number | undefined }): void;
  /** Log `event` unless one with the same key was logged already (a reason per role, not per request). */
  logOnce(key: string, event: { level: string; msg: string; [k: string]: string | number | undefined }): void;
}

/**
 * Verify `password` for `user` by logging in upstream, under `method`.
 * Every refusal reads the same to the caller (28P01, PostgreSQL's wording),
 * whether the role is unknown, the password wrong, or the login proved too
 * little; the gateway's log says which.
 */
export async function verifyByLogin(method: PasswordMethod, database: string, user: string, password: string, verifier: LoginVerifier): Promise<void> {
  const failed = passwordFailed(user);
  const login = await verifier.upstreamLogin(database, user, password);
  if (!login.ok) {
    verifier.log({ level: "info", msg: "the upstream refused the verification login", user, database, code: login.code, reason: login.reason });
    throw refusedBy(failed, "upstream login", `the upstream refused the login: ${login.code} ${login.reason}`);
  }
  const why = unprovenBecause(method, login);
  if (why !== undefined) {
    verifier.logOnce(`${method}\u0000${user}\u0000${why}`, {
      level: "warn",
      msg: "a password was refused because the upstream login does not prove it",
      user,
      database,
      method,
      reason: why,
    });
    throw refusedBy(failed, "upstream login", why);
  }
}
