// Throwaway OpenLDAP servers for tests: Debian's slapd (packages `slapd` and
// `ldap-utils`) on two ephemeral loopback ports, plain LDAP (with StartTLS)
// and LDAPS, certificates from a throwaway CA, an mdb database in a temporary
// directory, torn down by stop().
//
// The directory is PostgreSQL's own LDAP test data (authdata.ldif from
// src/test/ldap: dc=example,dc=net with uid=test1 and uid=test2 directly under
// it) plus entries for the gateway's own tests: two users sharing one mail
// value, a user whose uid needs DN escaping, and a search service account.
//
// The configuration is a generated slapd.conf (-f), loaded offline with
// slapadd, then slapd runs in the foreground (-d) so the child is the server
// itself: pause()/resume() SIGSTOP/SIGCONT it and stop() waits for its exit.
// Under root everything runs as the `openldap` system user (or `nobody`) via
// spawn's uid/gid, and the files are owned by it; slapd never needs root here.
import { fileURLToPath } from "node:url";
import { makeCa } from "./certs.ts";
import { freePort, unprivilegedUser, type RunAs } from "./process.ts";
import { corpusMissing, missingCommands, missingPaths, reasons } from "./prerequisites.ts";
import { runOk } from "./spawn.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SLAPD = "/usr/sbin/slapd";
export const SLAPADD = "/usr/sbin/slapadd";
const SCHEMA_DIR = "/etc/ldap/schema";
const MODULE_DIR = "/usr/lib/ldap";
/** PostgreSQL's LDAP test directory (src/test/ldap/authdata.ldif), in shared/ beside the checkout. */
export const AUTHDATA_LDIF = fileURLToPath(new URL("../../../shared/corpora/postgres/authdata.ldif", import.meta.url));

export const LDAP_HOST = "127.0.0.1";
export const BASE_DN = "dc=example,dc=net";
export const ADMIN_DN = `cn=admin,${BASE_DN}`;
export const ADMIN_PASSWORD = "adminpw";
export const SEARCH_DN = `cn=search,${BASE_DN}`;
export const SEARCH_PASSWORD = "searchpw";
/** The mail value shared by users dup1 and dup2. */
export const DUP_MAIL = "dup@example.net";

export interface LdapUser {
  /** The uid attribute value, i.e. the name a client would log in with. */
  readonly uid: string;
  /** The entry's DN, escaped as RFC 4514 requires. */
  readonly dn: string;
  readonly password: string;
  readonly mail: string;
  readonly cn: string;
}

export type LdapUserKey = "test1" | "test2" | "dup1" | "dup2" | "special";

/** The uid of the `special` user: a comma, a plus, double quotes, an apostrophe and a space,
 * all legal in a search filter unescaped but needing escapes in a DN. */
export const SPECIAL_UID = `o'brien, "jr"+x`;

export const LDAP_USERS: Readonly<Record<LdapUserKey, LdapUser>> = {
  // From authdata.ldif; passwords as PostgreSQL's 001_auth.pl sets them.
  test1: { uid: "test1", dn: `uid=test1,${BASE_DN}`, password: "secret1", mail: "test1@example.net", cn: "First Test User" },
  test2: { uid: "test2", dn: `uid=test2,${BASE_DN}`, password: "secret2", mail: "test2@example.net", cn: "Second Test User" },
  // Added here: two users with the same mail, for "search found more than one entry".
  dup1: { uid: "dup1", dn: `uid=dup1,${BASE_DN}`, password: "dupsecret1", mail: DUP_MAIL, cn: "Duplicate One" },
  dup2: { uid: "dup2", dn: `uid=dup2,${BASE_DN}`, password: "dupsecret2", mail: DUP_MAIL, cn: "Duplicate Two" },
  special: {
    uid: SPECIAL_UID,
    dn: `uid=o'brien\\, \\"jr\\"\\+x,${BASE_DN}`,
    password: "sp3cial",
    mail: "obrien@example.net",
    cn: "Special Characters",
  },
};

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

export interface Blackhole {
  readonly port: number;
  /** How many connections were accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
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


/** A loopback port on which nothing listens (a connection is refused), as far as can be known. (Nothing is to bind it: freePort is what is wanted.) */
export async function freeClosedPort(): Promise<number> {
  return freePort(LDAP_HOST);
}

/** A TCP server on 127.0.0.1 that accepts connections and never writes a byte. */
export async function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const srv = createServer((sock) => {
    accepted++;
    sockets.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => sockets.delete(sock));
    // Read and discard, so the peer's writes never block.
    sock.resume();
  });
  const port = await new Promise<number>((resolve, reject) => {
    srv.on("error", reject);
    srv.listen(0, LDAP_HOST, () => {
      const addr = srv.address();
      if (typeof addr === "object" && addr) resolve(addr.port);
      else reject(new Error("no port"));
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port,
    get accepted() {
      return accepted;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      });
      return closed;
    },
  };
}

/** What slapd and slapadd run with: no locale, no LDAP settings from the caller's environment. */
const C_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" };

/** `{SSHA}` as slappasswd makes it: base64(SHA1(password + salt) + salt). */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash("sha1").update(password, "utf8").update(salt).digest();
  return "{SSHA}" + Buffer.concat([digest, salt]).toString("base64");
}

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

function extraLdif(): string {
  const person = (u: LdapUser, uidNumber: number) =>
    [
      `dn: ${u.dn}`,
      "objectClass: inetOrgPerson",
      "objectClass: posixAccount",
      `uid: ${u.uid}`,
      "sn: Lastname",
      `cn: ${u.cn}`,
      `uidNumber: ${uidNumber}`,
      "gidNumber: 100",
      `homeDirectory: /home/user${uidNumber}`,
      `mail: ${u.mail}`,
      `userPassword: ${ssha(u.password)}`,
      "",
    ].join("\n");
  return [
    person(LDAP_USERS.dup1, 201),
    person(LDAP_USERS.dup2, 202),
    person(LDAP_USERS.special, 203),
    [
      `dn: ${SEARCH_DN}`,
      "objectClass: organizationalRole",
      "objectClass: simpleSecurityObject",
      "cn: search",
      "description: service account for search+bind",
      `userPassword: ${ssha(SEARCH_PASSWORD)}`,
      "",
    ].join("\n"),
  ].join("\n");
}

/** authdata.ldif with userPassword added to test1 and test2. */
async function authdataLdif(): Promise<string> {
  const text = await readFile(AUTHDATA_LDIF, "utf8");
  const entries = text.replace(/\r\n/g, "\n").split(/\n\s*\n/).map((e) => e.trim()).filter((e) => e !== "");
  return entries
    .map((entry) => {
      const dn = entry.match(/^dn:\s*(.*)$/m)?.[1]?.trim();
      const user = Object.values(LDAP_USERS).find((u) => u.dn === dn);
      return user ? `${entry}\nuserPassword: ${ssha(user.password)}\n` : `${entry}\n`;
    })
    .join("\n");
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
    await writeFile(ldifPath, (await authdataLdif()) + "\n" + extraLdif(), { mode: 0o600 });
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

    const deadline = Date.now() + 15_000;
    for (;;) {
      if (spawnError) throw spawnError;
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`slapd exited ${proc.exitCode ?? proc.signalCode} during startup:\n${await readFile(logPath, "utf8")}`);
      }
      if ((await canConnect(port)) && (await canConnect(ldapsPort))) break;
      if (Date.now() > deadline) {
        throw new Error(`slapd did not listen on ${url} and ${ldapsUrl} within 15s:\n${await readFile(logPath, "utf8")}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
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
