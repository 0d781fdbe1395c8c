// Processes the benchmark starts and watches: spawn until ready, run to a
// JSON line, CPU ticks from /proc, and core affinity with taskset.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const TASKSET = existsSync("/usr/bin/taskset") ? "/usr/bin/taskset" : undefined;

/** argv run on `cores` ("0", "1", "0,1") when taskset is there. */
export const pinned = (cores: string, argv: readonly string[]): string[] => (TASKSET ? [TASKSET, "-c", cores, ...argv] : [...argv]);

export async function startProcess(cwd: string, argv: readonly string[], env: NodeJS.ProcessEnv, readyPattern: RegExp): Promise<ChildProcess> {
  return (await startProcessMatching(cwd, argv, env, readyPattern)).child;
}

/** startProcess, also answering what the ready line matched (a port the process chose, say). */
export function startProcessMatching(cwd: string, argv: readonly string[], env: NodeJS.ProcessEnv, readyPattern: RegExp): Promise<{ child: ChildProcess; ready: RegExpExecArray }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`not ready: ${argv.join(" ")}\n${out}`)), 60_000);
    // Ready lines come on either stream (the gateway's is a JSON log line on stderr), each matched on its own.
    const streams = { stdout: "", stderr: "" };
    const seen = (name: keyof typeof streams) => (d: Buffer) => {
      out += d.toString();
      streams[name] += d.toString();
      const ready = readyPattern.exec(streams[name]);
      if (ready) {
        clearTimeout(timer);
        resolve({ child, ready });
      }
    };
    child.stdout!.on("data", seen("stdout"));
    child.stderr!.on("data", seen("stderr"));
    child.once("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
}

/** A measuring process that has not finished in this long is killed (the run fails rather than hangs). */
const RUN_TIMEOUT_MS = 5 * 60_000;

/** Run to completion; the last line of its output is JSON. */
export function runJson(cwd: string, argv: readonly string[], env: NodeJS.ProcessEnv = {}): Record<string, number> {
  const out = execFileSync(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, ...env }, encoding: "utf8", maxBuffer: 1 << 26, timeout: RUN_TIMEOUT_MS, killSignal: "SIGKILL" });
  return JSON.parse(out.trim().split("\n").pop()!) as Record<string, number>;
}

/** A process's CPU from /proc, in microseconds (100 ticks a second): its own, and with `reaped` its ended children's too. */
function procCpuMicros(pid: number, reaped: boolean): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
  const own = Number(fields[11]) + Number(fields[12]);
  return (reaped ? own + Number(fields[13]) + Number(fields[14]) : own) * 10_000;
}

/** User + system CPU of a process so far, in microseconds (from /proc, 100 ticks a second). */
export function cpuMicros(pid: number): number {
  return procCpuMicros(pid, false);
}

/** Move a running process (all its threads) to `cores`. */
export function setAffinity(pid: number, cores: string): void {
  if (TASKSET) execFileSync(TASKSET, ["-a", "-cp", cores, String(pid)], { stdio: "ignore" });
}

/**
 * A cluster's CPU so far, in µs: the postmaster's own and its ended
 * children's (which the kernel adds to it once reaped), and each running
 * child's (backends come and go with the pools).
 */
export function clusterCpuMicros(dataDir: string): number {
  const [postmaster, ...children] = postgresPids(dataDir);
  if (postmaster === undefined) return 0;
  let total = procCpuMicros(postmaster, true);
  for (const pid of children) {
    try {
      total += cpuMicros(pid);
    } catch {
      // ended between the listing and the read: counted with the postmaster's next time
    }
  }
  return total;
}

/** The postmaster and its children (backends fork from it and inherit its affinity). */
export function postgresPids(dataDir: string): number[] {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return [];
  const postmaster = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  let children: number[] = [];
  try {
    children = execFileSync("pgrep", ["-P", String(postmaster)], { encoding: "utf8" }).trim().split("\n").filter(Boolean).map(Number);
  } catch {
    // no children listed
  }
  return [postmaster, ...children];
}
