// Self-test of the slapd harness with the OpenLDAP command-line tools: simple
// binds, ldaps:// and StartTLS against the right and the wrong CA, the
// duplicate-mail entries, the DN-escaped entry, pause/resume, the blackhole
// and the refused port, and that stop() leaves nothing behind.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { freeClosedPort, startBlackhole } from "./dead-servers.ts";
import { slapdMissing, startSlapd, type Slapd } from "./slapd.ts";
import { run, type RunResult } from "./spawn.ts";

/** Run an ldap-utils tool with a hard time limit; never rejects on a non-zero exit. */
function tool(cmd: string, args: readonly string[], opts: { caFile?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C", LDAPTLS_REQCERT: "demand" };
  if (opts.caFile !== undefined) env.LDAPTLS_CACERT = opts.caFile;
  return run(cmd, args, { env, timeoutMs: opts.timeoutMs ?? 10_000 });
}

const entries = (ldif: string) => ldif.split("\n").filter((l) => /^dn::? /.test(l)).length;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function tcpConnects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.setTimeout(2_000, () => (s.destroy(), resolve(false)));
    s.on("connect", () => (s.destroy(), resolve(true)));
    s.on("error", () => resolve(false));
  });
}

// The tools below come from ldap-utils; the harness itself needs none of them.
const skip = slapdMissing({ tools: ["ldapwhoami", "ldapsearch"] }) ?? false;

describe("slapd harness", { skip, timeout: 120_000 }, () => {
  let ldap: Slapd;
  before(async () => {
    ldap = await startSlapd();
  });
  after(async () => {
    await ldap?.stop();
  });

  test("simple bind on ldap:// with the right password", async () => {
    const { dn, password } = ldap.users.test1;
    const r = await tool("ldapwhoami", ["-x", "-H", ldap.url, "-D", dn, "-w", password]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `dn:${dn}`);
    const r2 = await tool("ldapwhoami", ["-x", "-H", ldap.url, "-D", ldap.users.test2.dn, "-w", "secret2"]);
    assert.equal(r2.code, 0, r2.stderr);
  });

  test("a wrong password is invalidCredentials (49)", async () => {
    const r = await tool("ldapwhoami", ["-x", "-H", ldap.url, "-D", ldap.users.test1.dn, "-w", "wrong"]);
    assert.equal(r.code, 49, r.stderr);
    assert.match(r.stderr, /Invalid credentials/);
  });

  test("ldaps:// verifies against caFile and fails against wrongCaFile", async () => {
    const args = ["-x", "-LLL", "-H", ldap.ldapsUrl, "-b", ldap.baseDn, "(uid=test1)", "dn"];
    const ok = await tool("ldapsearch", args, { caFile: ldap.caFile });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(entries(ok.stdout), 1);
    const bad = await tool("ldapsearch", args, { caFile: ldap.wrongCaFile });
    assert.notEqual(bad.code, 0);
    assert.equal(bad.timedOut, false);
    assert.match(bad.stderr, /Can't contact LDAP server/);
  });

  test("StartTLS (-ZZ) on the plain port verifies against caFile only", async () => {
    const { dn, password } = ldap.users.test2;
    const args = ["-x", "-ZZ", "-H", ldap.url, "-D", dn, "-w", password];
    const ok = await tool("ldapwhoami", args, { caFile: ldap.caFile });
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await tool("ldapwhoami", args, { caFile: ldap.wrongCaFile });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Connect error/);
  });

  test("anonymous search finds both entries with the duplicate mail, and no passwords", async () => {
    const r = await tool("ldapsearch", ["-x", "-LLL", "-H", ldap.url, "-b", ldap.baseDn, `(mail=${ldap.dupMail})`, "uid", "userPassword"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(entries(r.stdout), 2);
    assert.match(r.stdout, /uid: dup1/);
    assert.match(r.stdout, /uid: dup2/);
    assert.doesNotMatch(r.stdout, /userPassword/i);
  });

  test("the service account can bind and search for a user's DN", async () => {
    const r = await tool("ldapsearch", [
      "-x", "-LLL", "-H", ldap.url, "-D", ldap.searchDn, "-w", ldap.searchPassword,
      "-b", ldap.baseDn, "(uid=test1)", "1.1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `dn: ${ldap.users.test1.dn}`);
    const admin = await tool("ldapwhoami", ["-x", "-H", ldap.url, "-D", ldap.adminDn, "-w", ldap.adminPassword]);
    assert.equal(admin.code, 0, admin.stderr);
  });

  test("the entry with DN special characters binds with its escaped DN", async () => {
    const u = ldap.users.special;
    assert.match(u.uid, /,/);
    assert.match(u.uid, /\+/);
    assert.match(u.uid, /"/);
    const found = await tool("ldapsearch", ["-x", "-LLL", "-H", ldap.url, "-b", ldap.baseDn, `(uid=${u.uid})`, "uid"]);
    assert.equal(found.code, 0, found.stderr);
    assert.equal(entries(found.stdout), 1);
    const r = await tool("ldapwhoami", ["-x", "-H", ldap.url, "-D", u.dn, "-w", u.password]);
    assert.equal(r.code, 0, r.stderr);
    const wrong = await tool("ldapwhoami", ["-x", "-H", ldap.url, "-D", u.dn, "-w", "nope"]);
    assert.equal(wrong.code, 49, wrong.stderr);
  });

  test("pause() accepts TCP but never answers; resume() brings it back", async () => {
    ldap.pause();
    try {
      assert.equal(await tcpConnects(ldap.port), true);
      const r = await tool("ldapwhoami", ["-x", "-H", ldap.url], { timeoutMs: 1_500 });
      assert.equal(r.timedOut, true, `answered while paused: ${r.code} ${r.stdout}${r.stderr}`);
    } finally {
      ldap.resume();
    }
    const r = await tool("ldapwhoami", ["-x", "-H", ldap.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "anonymous");
  });

  test("startBlackhole() accepts and stays silent; freeClosedPort() refuses", async () => {
    const hole = await startBlackhole();
    try {
      const r = await tool("ldapwhoami", ["-x", "-H", `ldap://127.0.0.1:${hole.port}`], { timeoutMs: 1_500 });
      assert.equal(r.timedOut, true);
      assert.ok(hole.accepted >= 1);
    } finally {
      await hole.close();
      await hole.close();
    }
    const port = await freeClosedPort();
    assert.equal(await tcpConnects(port), false);
    const r = await tool("ldapwhoami", ["-x", "-H", `ldap://127.0.0.1:${port}`]);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Can't contact LDAP server/);
  });

  test("stop() kills slapd, removes its directory, and is idempotent", async () => {
    const other = await startSlapd();
    assert.equal(alive(other.pid), true);
    other.pause(); // stop() must cope with a paused server too
    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    assert.equal(alive(other.pid), false);
    assert.equal(existsSync(other.dir), false);
    assert.equal(await tcpConnects(other.port), false);
    assert.equal(await tcpConnects(other.ldapsPort), false);
  });
});
