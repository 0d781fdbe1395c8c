// Secret values cached with a time to live, refreshed in the background before
// they expire, one service call at a time per secret however many requests
// ask. When the service throttles or is down, the last good value keeps being
// served (stale) while refreshes back off; with no value ever fetched, the
// request fails closed (08001, HTTP 503).
import { GatewayError, SQLSTATE } from "../errors.ts";

export interface FetchedSecret {
  readonly text: string;
  readonly versionId: string;
}

/** The version stages a rotation moves a secret through (Secrets Manager's staging labels). */
export type VersionStage = "AWSCURRENT" | "AWSPENDING" | "AWSPREVIOUS";

/** Fetch one secret's version in `stage` (AWSCURRENT when not said). */
export type SecretFetcher = (secretId: string, stage?: VersionStage) => Promise<FetchedSecret>;

export interface SecretStoreOptions {
  /** How long a value counts as fresh. */
  readonly ttlMs: number;
  /** Refresh this long before expiry, in the background. */
  readonly refreshAheadMs: number;
  /** Backoff between failed refreshes: doubles from min to max. */
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  readonly now?: () => number;
}

interface Entry {
  value: FetchedSecret | undefined;
  fetchedAt: number;
  inflight: Promise<FetchedSecret> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  failures: number;
  lastError: string | undefined;
}

export type SecretListener = (secretId: string, value: FetchedSecret) => void;

export class SecretStore {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners: SecretListener[] = [];
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly fetcher: SecretFetcher,
    private readonly options: SecretStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Called when a refresh brings a new version (not for the first fetch). */
  onChange(listener: SecretListener): void {
    this.listeners.push(listener);
  }

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) {
      e = { value: undefined, fetchedAt: 0, inflight: undefined, timer: undefined, failures: 0, lastError: undefined };
      this.entries.set(id, e);
    }
    return e;
  }

  /** The secret's current text: fresh from cache, stale if the service is failing, fetched otherwise. */
  async get(id: string): Promise<string> {
    const e = this.entry(id);
    if (e.value && this.now() - e.fetchedAt < this.options.ttlMs) return e.value.text;
    if (e.value) {
      // Expired: serve what we have unless a refresh succeeds now.
      void this.refresh(id).catch(() => {});
      return e.value.text;
    }
    return (await this.refresh(id)).text;
  }

  /** Fetch now (one call however many ask at once): scheduled, or because the database refused a credential. */
  refresh(id: string): Promise<FetchedSecret> {
    const e = this.entry(id);
    e.inflight ??= (async () => {
      try {
        const value = await this.fetcher(id);
        const changed = e.value !== undefined && e.value.versionId !== value.versionId;
        e.value = value;
        e.fetchedAt = this.now();
        e.failures = 0;
        e.lastError = undefined;
        this.schedule(id, this.options.ttlMs - this.options.refreshAheadMs);
        if (changed) for (const l of this.listeners) l(id, value);
        return value;
      } catch (err) {
        e.failures += 1;
        e.lastError = err instanceof Error ? err.message : String(err);
        const backoff = Math.min(this.options.backoffMaxMs, this.options.backoffMinMs * 2 ** (e.failures - 1));
        this.schedule(id, backoff);
        if (e.value) return e.value;
        // Why stays in the cause, for the log and /readyz (it names the secret); the caller learns only that it is unavailable.
        throw new GatewayError(
          {
            code: SQLSTATE.sqlclientUnableToEstablishSqlconnection,
            message: "a configuration secret is unavailable",
            hint: "The secret could not be read and no earlier value is known; try again later.",
          },
          { cause: err },
        );
      } finally {
        e.inflight = undefined;
      }
    })();
    return e.inflight;
  }

  /**
   * The secret's text in another stage, fetched now and not cached: asked
   * only when the database refused the current value mid-rotation. Undefined
   * when that stage does not exist or cannot be had.
   */
  async fetchStage(id: string, stage: Exclude<VersionStage, "AWSCURRENT">): Promise<string | undefined> {
    try {
      return (await this.fetcher(id, stage)).text;
    } catch {
      return undefined;
    }
  }

  private schedule(id: string, delayMs: number): void {
    if (this.closed) return;
    const e = this.entry(id);
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => void this.refresh(id).catch(() => {}), Math.max(0, delayMs));
    // Background refreshes never keep the process alive on their own.
    e.timer.unref?.();
  }

  /**
   * For /readyz, one line for all secrets: "ok"; "ok (stale: …)" while the
   * last good values are served; "unavailable: …" when a secret has none.
   */
  status(): string {
    const unavailable: string[] = [];
    const stale: string[] = [];
    for (const [id, e] of this.entries) {
      if (e.lastError === undefined) continue;
      (e.value ? stale : unavailable).push(`${id}: ${e.lastError}`);
    }
    if (unavailable.length > 0) return `unavailable: ${unavailable.join("; ")}`;
    if (stale.length > 0) return `ok (stale: ${stale.join("; ")})`;
    return "ok";
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
  }
}
