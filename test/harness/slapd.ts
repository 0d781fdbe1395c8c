// Throwaway OpenLDAP servers for tests: Debian's slapd (packages `slapd` and
// `ldap-utils`) on two ephemeral loopback ports, plain LDAP (with StartTLS)
// and LDAPS, certificates from a throwaway CA (certs.ts), an mdb database in a
// temporary directory, torn down by stop(). What the directory holds is in
// ldap-directory.ts; servers that never answer are in dead-servers.ts.
//
// The configuration is a generated slapd.conf (-f), loaded offline with
// slapadd, then slapd runs in the foreground (-d) so the child is the server
// itself: pause()/resume() SIGSTOP/SIGCONT it and stop() waits for its exit.
// Under root everything runs as the `openldap` system user (or `nobody`) via
// spawn's uid/gid, and the files are owned by it; slapd never needs root here.
import { makeCa } from "./certs.ts";
import { eventually } from "./eventually.ts";
import {
  ADMIN_DN,
  ADMIN_PASSWORD,
  AUTHDATA_LDIF,
  BASE_DN,
  DUP_MAIL,
  directoryLdif,
  LDAP_USERS,
  SEARCH_DN,
  SEARCH_PASSWORD,
  ssha,
  type LdapUser,
  type LdapUserKey,
} from "./ldap-directory.ts";
import { freePort, unprivilegedUser, type RunAs } from "./process.ts";
import { corpusMissing, missingCommands, missingPaths, reasons } from "./prerequisites.ts";
import { runOk } from "./spawn.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The directory's names, as bench/run.ts and older imports know them from here. */
export { ADMIN_DN, BASE_DN, DUP_MAIL, LDAP_USERS, SEARCH_DN, SPECIAL_UID, type LdapUser, type LdapUserKey } from "./ldap-directory.ts";

export const LDAP_HOST = "127.0.0.1";
export const SLAPD = "/usr/sbin/slapd";
export const SLAPADD = "/usr/sbin/slapadd";
const SCHEMA_DIR = "/etc/ldap/schema";
const MODULE_DIR = "/usr/lib/ldap";
export interface Slapd {
  readonly host: string;
  /** Plain LDAP port (StartTLS available). */
  readonly port: number;
  readonly ldapsPort: number;
  /** ldap://127.0.0.1:port */
  readonly url: string;
  /** ldaps://127.0.0.1:ldapsPort */
  readonly ldapsUrl: string;
  readonly baseDn: string;
  /** PEM of the CA that signed the server certificate (CN=127.0.0.1, SAN IP:127.0.0.1, DNS:localhost). */
  readonly caFile: string;
  /** PEM of an unrelated CA: verifying the server against it must fail. */
  readonly wrongCaFile: string;
  readonly adminDn: string;
  readonly adminPassword: string;
  readonly searchDn: string;
  readonly searchPassword: string;
  readonly users: Readonly<Record<LdapUserKey, LdapUser>>;
  readonly dupMail: string;
  /** slapd's process id (the child itself, running in the foreground). */
  readonly pid: number;
  readonly dir: string;
  readonly logPath: string;
  readLog(): Promise<string>;
  /** SIGSTOP slapd: the kernel still accepts TCP connections, but nothing is ever answered. */
  pause(): void;
  /** SIGCONT slapd after pause(). */
  resume(): void;
  /** Kill slapd, wait for it to exit and remove the directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * SIGSTOP takes effect asynchronously, thread by thread: wait (synchronously,
 * briefly) until every thread of the process is stopped, so a request sent
 * right after pause() cannot be answered by a thread still running.
 */
function waitStopped(pid: number): void {
  const deadline = Date.now() + 2000;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  try {
    while (Date.now() < deadline) {
      const states = readdirSync(`/proc/${pid}/task`).map((t) => readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8").replace(/^.*\) /, "")[0]);
      if (states.every((state) => state === "T" || state === "t")) return;
      Atomics.wait(tick, 0, 0, 1);
    }
  } catch {
    // the process is gone: nothing left to wait for
  }
}

export interface SlapdNeeds {
  /** ldap-utils commands the caller runs itself (the harness needs none). */
  readonly tools?: readonly string[];
}

/**
 * Why startSlapd() cannot work here, or undefined: the slapd package (server,
 * slapadd, the schemas and back_mdb the configuration loads), openssl for the
 * throwaway CAs, the LDIF the directory is loaded from, and the caller's tools.
 */
export function slapdMissing(needs: SlapdNeeds = {}): string | undefined {
  const server = missingPaths("slapd", [SLAPD, SLAPADD, join(SCHEMA_DIR, "nis.schema"), join(MODULE_DIR, "back_mdb.la")]);
  const openssl = missingCommands("openssl", ["openssl"]);
  const tools = missingCommands("ldap-utils", needs.tools ?? []);
  return reasons(
    server.length > 0 ? `Debian's slapd is not installed (${server.join(", ")}; apt-get install -y slapd ldap-utils)` : undefined,
    openssl.length > 0 ? "openssl is not on PATH (apt-get install -y openssl)" : undefined,
    tools.length > 0 ? `ldap-utils is not installed (${tools.join(", ")} not on PATH; apt-get install -y ldap-utils)` : undefined,
    corpusMissing([AUTHDATA_LDIF], "it is a verbatim copy of src/test/ldap/authdata.ldif from postgres/postgres"),
  );
}

export function slapdAvailable(): boolean {
  return slapdMissing() === undefined;
}


/** What slapd and slapadd run with: no locale, no LDAP settings from the caller's environment. */
const C_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" };

/** The server's certificate from a throwaway CA, and an unrelated CA that must not verify it. */
function makeCertificates(dir: string): { ca: string; wrongCa: string; cert: string; key: string } {
  const ca = makeCa(dir, "ca", { o: "hbagate tests", cn: "hbagate test CA" });
  const wrongCa = makeCa(dir, "wrong-ca", { o: "hbagate tests", cn: "hbagate unrelated CA" });
  const server = ca.issue("server", { cn: "127.0.0.1", serverFor: ["IP:127.0.0.1", "DNS:localhost"] });
  return { ca: ca.certFile, wrongCa: wrongCa.certFile, cert: server.certFile, key: server.keyFile };
}

function slapdConf(dir: string, dbDir: string, tls: { ca: string; cert: string; key: string }): string {
  return [
    `include ${SCHEMA_DIR}/core.schema`,
    `include ${SCHEMA_DIR}/cosine.schema`,
    `include ${SCHEMA_DIR}/inetorgperson.schema`,
    `include ${SCHEMA_DIR}/nis.schema`,
    "",
    `pidfile ${join(dir, "slapd.pid")}`,
    `argsfile ${join(dir, "slapd.args")}`,
    `modulepath ${MODULE_DIR}`,
    "moduleload back_mdb",
    "",
    `TLSCACertificateFile ${tls.ca}`,
    `TLSCertificateFile ${tls.cert}`,
    `TLSCertificateKeyFile ${tls.key}`,
    "TLSVerifyClient never",
    "",
    "database mdb",
    `suffix "${BASE_DN}"`,
    `rootdn "${ADMIN_DN}"`,
    `rootpw ${ssha(ADMIN_PASSWORD)}`,
    `directory ${dbDir}`,
    "maxsize 16777216",
    "index objectClass,uid,mail,cn eq",
    "",
    "access to attrs=userPassword",
    "  by self write",
    "  by anonymous auth",
    "  by * none",
    "access to *",
    "  by * read",
    "",
  ].join("\n");
}

async function chownTree(path: string, as: RunAs | undefined): Promise<void> {
  if (!as) return;
  await chown(path, as.uid, as.gid);
  for (const ent of await readdir(path, { withFileTypes: true })) {
    const p = join(path, ent.name);
    if (ent.isDirectory()) await chownTree(p, as);
    else await chown(p, as.uid, as.gid);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: LDAP_HOST, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on("connect", () => done(true));
    s.on("error", () => done(false));
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(t);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

export async function startSlapd(): Promise<Slapd> {
  const missing = slapdMissing();
  if (missing !== undefined) throw new Error(`cannot start slapd: ${missing}`);
  const as = unprivilegedUser(["openldap", "nobody"], "slapd");
  const dir = await mkdtemp(join(tmpdir(), "hbagate-slapd-"));
  let child: ChildProcess | undefined;
  const killOnExit = () => {
    child?.kill("SIGKILL");
  };
  try {
    await chmod(dir, 0o755);
    const dbDir = join(dir, "db");
    await mkdir(dbDir, { mode: 0o700 });
    const tls = makeCertificates(dir);
    const confPath = join(dir, "slapd.conf");
    await writeFile(confPath, slapdConf(dir, dbDir, tls), { mode: 0o600 });
    const ldifPath = join(dir, "data.ldif");
    await writeFile(ldifPath, await directoryLdif(), { mode: 0o600 });
    const logPath = join(dir, "slapd.log");
    await writeFile(logPath, "");
    await chownTree(dir, as);

    await runOk(SLAPADD, ["-q", "-f", confPath, "-l", ldifPath], { as, env: C_ENV, timeoutMs: 30_000 });

    // freePort is unavoidable here: slapd takes its listeners as URLs on the command line and
    // has no way to report a port the system chose. Should another process take one meanwhile,
    // slapd exits and the start below fails with its log, rather than testing the wrong server.
    const port = await freePort(LDAP_HOST);
    let ldapsPort = await freePort(LDAP_HOST);
    while (ldapsPort === port) ldapsPort = await freePort(LDAP_HOST);
    const url = `ldap://${LDAP_HOST}:${port}`;
    const ldapsUrl = `ldaps://${LDAP_HOST}:${ldapsPort}`;

    const log = await open(logPath, "a");
    try {
      // -d stats: stay in the foreground and log connections, binds and searches to stderr.
      child = spawn(SLAPD, ["-d", "stats", "-f", confPath, "-h", `${url}/ ${ldapsUrl}/`], {
        env: C_ENV,
        stdio: ["ignore", log.fd, log.fd],
        ...(as ? { uid: as.uid, gid: as.gid } : {}),
      });
    } finally {
      await log.close();
    }
    const proc = child;
    process.once("exit", killOnExit);
    let spawnError: Error | undefined;
    proc.on("error", (e) => (spawnError = e));

    // Listening on both ports, or gone: either ends the wait (a slapd that has exited is not waited for).
    const outcome = await eventually(
      async () => (spawnError || proc.exitCode !== null || proc.signalCode !== null ? "exited" : (await canConnect(port)) && (await canConnect(ldapsPort)) && "listening"),
      { timeoutMs: 15_000, intervalMs: 50, what: `slapd to listen on ${url} and ${ldapsUrl}` },
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}:\n${await readFile(logPath, "utf8")}`);
    });
    if (spawnError) throw spawnError;
    if (outcome === "exited") throw new Error(`slapd exited ${proc.exitCode ?? proc.signalCode} during startup:\n${await readFile(logPath, "utf8")}`);
    const pid = proc.pid;
    if (pid === undefined) throw new Error("slapd has no pid");

    let stopping: Promise<void> | undefined;
    return {
      host: LDAP_HOST,
      port,
      ldapsPort,
      url,
      ldapsUrl,
      baseDn: BASE_DN,
      caFile: tls.ca,
      wrongCaFile: tls.wrongCa,
      adminDn: ADMIN_DN,
      adminPassword: ADMIN_PASSWORD,
      searchDn: SEARCH_DN,
      searchPassword: SEARCH_PASSWORD,
      users: LDAP_USERS,
      dupMail: DUP_MAIL,
      pid,
      dir,
      logPath,
      readLog: () => readFile(logPath, "utf8"),
      pause() {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill("SIGSTOP");
          waitStopped(pid);
        }
      },
      resume() {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGCONT");
      },
      stop() {
        stopping ??= (async () => {
          if (proc.exitCode === null && proc.signalCode === null) {
            // A paused slapd would sit on SIGTERM until continued.
            proc.kill("SIGCONT");
            proc.kill("SIGTERM");
            if (!(await waitExit(proc, 5_000))) {
              proc.kill("SIGKILL");
              await waitExit(proc, 5_000);
            }
          }
          process.off("exit", killOnExit);
          await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (e) {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await waitExit(child, 5_000);
    }
    process.off("exit", killOnExit);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
