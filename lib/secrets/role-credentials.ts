// The passwords the pools log in with, from the role-credentials setting: a
// literal, or an RDS-shaped secret read through the store. While a secret
// rotates, the database may hold its pending or previous version; the pools
// prove a candidate by logging in with it (Pools.proveAlternative) and the
// one that logged in is kept, while the secret's current text is still the
// one it was found under.
import type { RoleCredential } from "../config/configuration.ts";
import type { LogEvent } from "../log.ts";
import type { RoleCredentials } from "../upstream/upstream-settings.ts";
import { passwordFromSecret } from "./rds-credentials.ts";
import { parseSecretReference } from "./reference.ts";
import type { SecretStore } from "./secret-store.ts";

export function configuredRoleCredentials(
  /** The configuration in force (it is reloaded whole). */
  credentials: () => ReadonlyMap<string, RoleCredential> | undefined,
  store: SecretStore | undefined,
  log: (e: LogEvent) => void,
): RoleCredentials {
  const preferred = new Map<string, { readonly password: string; readonly whileCurrentIs: string }>();
  const currentTexts = new Map<string, string | undefined>();
  return {
    password(role) {
      const c = credentials()?.get(role);
      if (!c) return undefined;
      if (c.kind === "literal") return c.password;
      if (!store) return undefined;
      return store.get(parseSecretReference(c.reference).secretId).then((secret) => {
        const kept = preferred.get(role);
        // Until the secret's current version changes, the password that last logged in.
        if (kept && kept.whileCurrentIs === secret) return kept.password;
        if (kept) preferred.delete(role);
        return passwordFromSecret(role, c.reference, secret);
      });
    },
    async alternatives(role) {
      const c = credentials()?.get(role);
      if (c?.kind !== "secret" || !store) return [];
      log({ level: "info", msg: "the database refused a configured password; fetching the secret again (its current, pending and previous versions)", role });
      const id = parseSecretReference(c.reference).secretId;
      // In RDS's order the database has the pending password before it is current; in the
      // other order the current one is ahead of the database, which still has the previous one.
      const texts = await Promise.all([store.refresh(id).then((v) => v.text, () => undefined), store.fetchStage(id, "AWSPENDING"), store.fetchStage(id, "AWSPREVIOUS")]);
      const passwords: string[] = [];
      for (const text of texts) {
        if (text === undefined) continue;
        try {
          const p = passwordFromSecret(role, c.reference, text);
          if (!passwords.includes(p)) passwords.push(p);
        } catch {
          // A version of another shape (or for another user) is no candidate.
        }
      }
      currentTexts.set(role, texts[0]);
      return passwords;
    },
    prefer(role, password) {
      const current = currentTexts.get(role);
      if (password === undefined || current === undefined) preferred.delete(role);
      else preferred.set(role, { password, whileCurrentIs: current });
    },
  };
}
