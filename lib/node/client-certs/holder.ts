// The client certificate trust in force, swapped whole on reload: a CA or
// CRL file that fails to load leaves the previous trust in place (as
// PostgreSQL keeps its SSL context when a reloaded one is bad).
import type { ClientTrust, TrustFiles } from "./trust.ts";
import { loadClientTrust } from "./trust.ts";

export class ClientTrustHolder {
  #current: ClientTrust;
  readonly #listeners: ((trust: ClientTrust) => void)[] = [];

  /** Throws, naming the file, when the files cannot be loaded. */
  constructor(
    private readonly files: TrustFiles,
    private readonly readFile: (path: string) => string,
  ) {
    this.#current = loadClientTrust(files, readFile);
  }

  get current(): ClientTrust {
    return this.#current;
  }

  /** Called with the new trust after each successful reload (the TLS listener's context). */
  onChange(listener: (trust: ClientTrust) => void): void {
    this.#listeners.push(listener);
  }

  /** Re-read both files: undefined when applied, else the error (the previous trust stays). */
  reload(): string | undefined {
    let next: ClientTrust;
    try {
      next = loadClientTrust(this.files, this.readFile);
    } catch (err) {
      return (err as Error).message;
    }
    try {
      for (const listener of this.#listeners) listener(next);
    } catch (err) {
      return `the new client certificate trust could not be applied: ${(err as Error).message}`;
    }
    this.#current = next;
    return undefined;
  }
}
