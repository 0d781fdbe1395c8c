// Child processes for tests, one way: run() a command to its exit and collect
// what it wrote, or startProcess() a server and wait for the line that says it
// is ready, then stop() it. (For the gateway itself, see gateway.ts.)
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import type { Readable } from "node:stream";
import type { RunAs } from "./process.ts";

/** A child with nothing on stdin and its stdout and stderr piped to us. */
export type Child = ChildProcessByStdio<null, Readable, Readable>;

export interface SpawnOptions {
  /** The child's whole environment (not merged with process.env; spread it in for that). Default: process.env. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Run as this user (see unprivilegedUser). */
  readonly as?: RunAs | undefined;
}

export interface RunOptions extends SpawnOptions {
  /** SIGKILL the child (its whole process group with `group`) after this long; `timedOut` says so. */
  readonly timeoutMs?: number;
  /** Its own process group, so a timeout also ends whatever it started. */
  readonly group?: boolean;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved as they came. */
  readonly output: string;
  readonly timedOut: boolean;
}

function spawnPiped(cmd: string, args: readonly string[], opts: SpawnOptions & { detached?: boolean }): Child {
  return spawn(cmd, args, {
    env: opts.env ?? process.env,
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    stdio: ["ignore", "pipe", "pipe"],
    ...(opts.detached ? { detached: true } : {}),
    ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}),
  });
}

/** Run `cmd` to its exit. Resolves whatever the exit status; rejects only when it cannot be started. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnPiped(cmd, args, { ...opts, detached: opts.group === true });
      let stdout = "";
    let stderr = "";
    let output = "";
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            try {
              if (opts.group && child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
              else child.kill("SIGKILL");
            } catch {
              // already gone
            }
          }, opts.timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      output += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      output += d.toString();
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, output, timedOut });
    });
  });
}

/** run(), rejecting unless the command exits 0; resolves to its output (stdout and stderr). */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code ?? r.signal}:\n${r.output}`);
  return r.output;
}

export interface StartOptions extends SpawnOptions {
  /** The stream the ready line is written to. Default stdout. */
  readonly readyOn?: "stdout" | "stderr";
  /** Give up (and kill the child) if not ready within this long. Default 60 s. */
  readonly timeoutMs?: number;
}

export interface Started {
  readonly child: Child;
  /** What the ready pattern matched (a URL or port the process chose, say). */
  readonly ready: RegExpExecArray;
  /** Everything written so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Signal the child (SIGTERM by default) unless it has exited, and wait for its exit; its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Start a long-running `cmd` and wait until what it wrote to `readyOn` matches `ready`.
 * Rejects (with what it wrote) if it exits first or is not ready in time.
 */
export function startProcess(cmd: string, args: readonly string[], ready: RegExp, opts: StartOptions = {}): Promise<Started> {
  const child = spawnPiped(cmd, args, opts);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let match: RegExpExecArray | undefined;
  const started: Started = {
    child,
    get ready() {
      return match!;
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) {
        const exit = once(child, "exit");
        child.kill(signal);
        await exit;
      }
      return child.exitCode;
    },
  };
  const what = `${cmd} ${args.join(" ")}`;
  return new Promise((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what}: not ready (${ready}) within ${timeoutMs / 1000} s; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    const stream = opts.readyOn === "stderr" ? child.stderr : child.stdout;
    const look = () => {
      match = ready.exec(opts.readyOn === "stderr" ? stderr : stdout) ?? undefined;
      if (match) {
        clearTimeout(timer);
        stream.off("data", look);
        resolve(started);
      }
    };
    stream.on("data", look);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited ${code ?? signal} before it was ready; stdout:\n${stdout}\nstderr:\n${stderr}`));
    });
  });
}
