// SharedFailures kept in a table of the upstream PostgreSQL, written with the
// gateway's service login: the one store every instance already reaches. One
// statement per verification that runs (counted before it runs), one more when
// it succeeds (the count cleared); a cached success pays nothing. Pairs are
// stored as HMAC-SHA-256 digests of (client address, identity) under a key
// every instance shares, never as names or addresses.
//
// The table is created on first use when the service user may (CREATE on the
// schema); otherwise an operator creates it from TABLE_DDL. A store that does
// not answer within the timeout (or refuses) is logged once per outage, and
// the per-instance limiter alone applies meanwhile.
import type { ServiceQuery } from "./service-query.ts";
import type { SharedFailures, SharedStanding } from "../auth/shared-failures.ts";
import { within } from "./within.ts";

export interface FailureTableOptions {
  /** Table name, optionally schema-qualified: letters, digits and underscores only. */
  readonly table: string;
  readonly lockAfter: number;
  readonly windowMs: number;
  readonly lockMs: number;
  /** Give up on one statement after this long (the request goes on with the per-instance limiter). */
  readonly timeoutMs: number;
  /**
   * The key of the pairs' digests, the same on every instance and unknown to
   * whoever reads the table: an unkeyed digest of (address, role) is reversed
   * by enumerating addresses and the roles pg_roles lists.
   */
  key(): string | Promise<string>;
  log(event: { level: string; msg: string; [k: string]: string | number | undefined }): void;
}

const NAME = /^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$/;

/** The table, for an operator who creates it (the service user then needs SELECT, INSERT, UPDATE, DELETE on it). */
export const tableDdl = (table: string) =>
  `create table if not exists ${table} (pair text primary key, failures integer not null, first_at timestamptz not null, locked_until timestamptz)`;

export function validTableName(table: string): boolean {
  return NAME.test(table);
}

const utf8 = new TextEncoder();

/** Rows past their window and lock are deleted at most this often (by whichever instance fails next). */
const SWEEP_EVERY_MS = 60_000;

export function failureTable(query: ServiceQuery, o: FailureTableOptions): SharedFailures {
  if (!validTableName(o.table)) throw new RangeError(`invalid table name "${o.table}"`);
  const t = o.table;
  let created: Promise<void> | undefined;
  let failing = false;
  let lastSweep = 0;
  // The imported key, remade when the key changes (a rotated service password it is derived from).
  let keyed: { readonly text: string; readonly key: ReturnType<typeof crypto.subtle.importKey> } | undefined;
  const digest = async (address: string, identity: string): Promise<string> => {
    const text = await o.key();
    if (keyed?.text !== text) keyed = { text, key: crypto.subtle.importKey("raw", utf8.encode(text), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]) };
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await keyed.key, utf8.encode(JSON.stringify([address, identity]))));
    return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  const run = async <T>(what: string, work: () => Promise<T>): Promise<T | undefined> => {
    try {
      // Instances starting together race to create it ("already exists" as 42P07, 42710 or 23505
      // from a catalog index), and the service user may not be allowed to: either way the statement
      // below says whether the table can be used, and creation is tried again after a failure.
      created ??= query(tableDdl(t)).then(
        () => {},
        () => {
          created = undefined;
        },
      );
      await within(created, o.timeoutMs, () => {
        throw new Error("timed out");
      });
      const out = await within(work(), o.timeoutMs, () => {
        throw new Error("timed out");
      });
      // The table is there (made by us, another instance or the operator): no more creating.
      created = Promise.resolve();
      if (failing) o.log({ level: "info", msg: "the shared failure table answers again", table: t });
      failing = false;
      return out;
    } catch (err) {
      if (!failing) {
        o.log({ level: "warn", msg: "the shared failure table cannot be used; each instance counts failures on its own meanwhile", table: t, action: what, error: err instanceof Error ? err.message : String(err) });
      }
      failing = true;
      return undefined;
    }
  };

  // A count past its window, or whose lock has run out, starts again.
  const stale = `(f.first_at <= now() - $3 * interval '1 millisecond' or f.locked_until <= now())`;
  const live = `f.locked_until > now()`;
  const lockedMs = `greatest(0, coalesce(extract(epoch from locked_until - now()) * 1000, 0))::float8 as locked_ms`;

  return {
    async attempt(address, identity): Promise<SharedStanding | undefined> {
      const pair = await digest(address, identity);
      // One statement, under the row's lock: concurrent attempts from any instance each get their
      // own number. Past the limit the pair locks and the attempt is not verified; while locked,
      // attempts are not counted.
      const rows = await run("count", () =>
        query<{ failures: number; locked_ms: number }>(
          `insert into ${t} as f (pair, failures, first_at, locked_until) values ($1, 1, now(), case when 1 > $2 then now() + $4 * interval '1 millisecond' end)
           on conflict (pair) do update set
             failures = case when ${live} then f.failures when ${stale} then 1 else f.failures + 1 end,
             first_at = case when ${live} then f.first_at when ${stale} then now() else f.first_at end,
             locked_until = case
               when ${live} then f.locked_until
               when (case when ${stale} then 1 else f.failures + 1 end) > $2 then now() + $4 * interval '1 millisecond'
               else null end
           returning failures, ${lockedMs}`,
          [pair, o.lockAfter, o.windowMs, o.lockMs],
        ),
      );
      await sweep();
      const row = rows?.[0];
      return row ? { failures: row.failures, lockedMs: Math.ceil(row.locked_ms) } : undefined;
    },

    async failed(address, identity): Promise<void> {
      const pair = await digest(address, identity);
      await run("count", () =>
        query(
          `insert into ${t} as f (pair, failures, first_at, locked_until) values ($1, 1, now(), case when 1 >= $2 then now() + $4 * interval '1 millisecond' end)
           on conflict (pair) do update set
             failures = case when ${live} then f.failures when ${stale} then 1 else f.failures + 1 end,
             first_at = case when ${live} then f.first_at when ${stale} then now() else f.first_at end,
             locked_until = case
               when ${live} then f.locked_until
               when (case when ${stale} then 1 else f.failures + 1 end) >= $2 then now() + $4 * interval '1 millisecond'
               else null end`,
          [pair, o.lockAfter, o.windowMs, o.lockMs],
        ),
      );
      await sweep();
    },

    async succeeded(address, identity): Promise<void> {
      const pair = await digest(address, identity);
      await run("clear", () => query(`delete from ${t} where pair = $1 and coalesce(locked_until <= now(), true)`, [pair]));
    },
  };

  /** Rows past their window and lock, deleted now and then by whichever instance counts next. */
  async function sweep(): Promise<void> {
    const now = Date.now();
    if (now - lastSweep <= SWEEP_EVERY_MS) return;
    lastSweep = now;
    await run("sweep", () =>
      query(`delete from ${t} where first_at <= now() - $1 * interval '1 millisecond' and coalesce(locked_until <= now(), true)`, [o.windowMs]),
    );
  }
}
