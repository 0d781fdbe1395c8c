#!/usr/bin/env node
// `npm test`'s first step: the system packages the integration tests stand up
// (Debian's PostgreSQL server, slapd and ldap-utils for throwaway directories,
// openssl for throwaway CAs). Missing ones are installed with apt-get when this
// machine can (Debian, root or password-less sudo); otherwise this names what is
// missing and the command that installs it, and the tests that need it are
// reported as skips (a failure under CI). HBAGATE_TEST_NO_INSTALL=1 never installs.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

/** Debian package -> a file whose presence means it is installed. */
const PACKAGES = {
  postgresql: () => {
    const dir = "/usr/lib/postgresql";
    return existsSync(dir) && readdirSync(dir).some((v) => existsSync(`${dir}/${v}/bin/postgres`) && existsSync(`${dir}/${v}/bin/initdb`));
  },
  slapd: () => existsSync("/usr/sbin/slapd") && existsSync("/usr/sbin/slapadd"),
  "ldap-utils": () => existsSync("/usr/bin/ldapsearch") && existsSync("/usr/bin/ldapadd"),
  openssl: () => existsSync("/usr/bin/openssl"),
};

const missing = Object.entries(PACKAGES)
  .filter(([, present]) => !present())
  .map(([name]) => name);
if (missing.length === 0) process.exit(0);

const install = `apt-get install -y --no-install-recommends ${missing.join(" ")}`;
const say = (text) => process.stderr.write(`test setup: ${text}\n`);
say(`missing system packages: ${missing.join(", ")}`);

const root = process.getuid?.() === 0;
const sudo = !root && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status === 0;
const canInstall = existsSync("/usr/bin/apt-get") && (root || sudo) && process.env.HBAGATE_TEST_NO_INSTALL !== "1";
if (!canInstall) {
  const why = !existsSync("/usr/bin/apt-get")
    ? "this is not a Debian-like system (no apt-get): install the equivalent packages"
    : process.env.HBAGATE_TEST_NO_INSTALL === "1"
      ? "HBAGATE_TEST_NO_INSTALL=1"
      : "not root and no password-less sudo";
  say(`not installing them (${why}). To install: sudo apt-get update && sudo ${install}`);
  say("the tests that need them are reported as skips (and fail the run under CI)");
  process.exit(0);
}

const asRoot = (args, input) => {
  const [cmd, ...rest] = root ? args : ["sudo", "-n", ...args];
  execFileSync(cmd, rest, { stdio: input === undefined ? "inherit" : ["pipe", "inherit", "inherit"], input, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
};
say(`installing with: apt-get update && ${install}`);
// slapd would otherwise configure and start a directory of its own; the tests start throwaway ones.
if (missing.includes("slapd")) asRoot(["debconf-set-selections"], "slapd slapd/no_configuration boolean true\n");
asRoot(["apt-get", "update", "-qq"]);
asRoot(["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...missing]);
const still = missing.filter((name) => !PACKAGES[name]());
if (still.length > 0) {
  say(`still missing after apt-get: ${still.join(", ")}`);
  process.exit(1);
}
say("installed");
