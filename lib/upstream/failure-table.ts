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

  /**
   * Make the table if it is not there, then check that the one the name finds
   * can be trusted: a role allowed to create tables where the name resolves
   * (public, before PostgreSQL 15) could have made it first, with a trigger
   * that drops every count and runs its code as the service user. Only a plain
   * table owned by the service user or a superuser is used.
   */
  const prepare = async (): Promise<void> => {
    try {
      await query(tableDdl(t));
    } catch {
      // Raced by another instance ("already exists": 42P07, 42710, 23505), or not allowed to
      // create (the operator made it): the check below says whether it can be used.
    }
    const [row] = await query<{ kind: string; owner: string; trusted: boolean }>(
      `select c.relkind::text as kind, pg_catalog.pg_get_userbyid(c.relowner) as owner,
              (c.relowner = (select oid from pg_catalog.pg_roles where rolname = current_user)
               or (select rolsuper from pg_catalog.pg_roles where oid = c.relowner)) as trusted
       from pg_catalog.pg_class c where c.oid = pg_catalog.to_regclass($1)`,
      [t],
    );
    if (!row) throw new Error("the table does not exist and cannot be created");
    if (row.kind !== "r") throw new Error(`"${t}" is not a plain table`);
    if (!row.trusted) throw new Error(`"${t}" is owned by "${row.owner}", neither the service user nor a superuser: not used`);
  };

  const run = async <T>(what: string, work: () => Promise<T[]>): Promise<T[] | undefined> => {
    try {
      created ??= prepare().catch((err: unknown) => {
        created = undefined;
        throw err;
      });
      await within(created, o.timeoutMs, () => {
        throw new Error("timed out");
      });
      const out = await within(work(), o.timeoutMs, () => {
        throw new Error("timed out");
      });
      if (failing) o.log({ level: "info", msg: "the shared failure table answers again", table: t });
      failing = false;
      return out;
    } catch (err) {
      // Dropped since it was made: made (and checked) again on the next statement.
      if ((err as { code?: unknown }).code === "42P01") created = undefined;
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

  /**
   * Count one more failure for the pair, in one statement under the row's lock
   * (concurrent counts from any instance each get their own number), locking it
   * once the count passes `lockAbove`; a locked pair is not counted. Its row
   * after the count, or undefined when the table cannot be used.
   */
  const count = (pair: string, lockAbove: number) =>
    run("count", () =>
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
        [pair, lockAbove, o.windowMs, o.lockMs],
      ),
    );

  return {
    async attempt(address, identity): Promise<SharedStanding | undefined> {
      // An attempt past the limit locks the pair and is not verified: the limit's own attempt still is.
      const rows = await count(await digest(address, identity), o.lockAfter);
      await sweep();
      if (rows === undefined) return undefined;
      const row = rows[0];
      if (!row) {
        // An upsert that returns nothing: something on the table (a rule, a trigger) dropped it.
        o.log({ level: "error", msg: "the shared failure table did not count an attempt; each instance counts failures on its own", table: t });
        return undefined;
      }
      return { failures: row.failures, lockedMs: Math.ceil(row.locked_ms) };
    },

    async failed(address, identity): Promise<void> {
      // A failure that reaches the limit locks the pair at once (it was never an attempt to let through).
      await count(await digest(address, identity), o.lockAfter - 1);
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
