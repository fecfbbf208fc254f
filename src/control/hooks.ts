// Hooks: the operator's create/destroy scripts, run as `FILE CREATE|DESTROY gwi-X gwo-X ENIHEX`.
// No shell: the file is executed directly with an argument vector, so nothing derived from a
// packet (the ENI ID) can ever be interpreted by a shell. Hooks run asynchronously in the
// control plane, never on the data path; output is captured (bounded) and logged.
//
// Each hook runs in its own process group (detached), which is what "everything the hook
// started" means here (a process that calls setsid or setpgid leaves it, on purpose).
// - A hook that outlives its timeout: SIGTERM to the whole group; after GRACE_MS, SIGKILL to the
//   whole group, whether or not the hook itself has exited by then (a helper that ignores SIGTERM
//   must not keep running beside the DESTROY hook of the same endpoint). The result is reported
//   only once the group is gone (SIGTERM was enough) or SIGKILL was sent, with `killed` saying
//   which signal the group last got and `outlived` whether members were still there after the
//   hook itself had exited.
// - A hook that ends by itself (success or failure) keeps its background processes: the
//   original gwlbtun ran hooks through system(), so a CREATE hook may start a per-endpoint daemon
//   (a capture, a relay) for DESTROY to stop, and docs/operations.md allows it. They are left
//   alone and the result says so (`outlived`); when gwlbtun is PID 1 their exit statuses are
//   collected by src/control/reaper.ts.
// Every hook PID is tracked for that reaper, which must never collect a child libuv waits for.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { monoMs } from '../base/clock';
import { trackChild, untrackChild } from './reaper';
import { spawnNormally } from '../io/sched';

export interface HookResult {
  file: string;
  args: string[];
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The last signal sent to the hook's process group after its timeout: null when it ended by
   * itself, 'TERM' when SIGTERM ended the group, 'KILL' when the group got SIGKILL. */
  killed: 'TERM' | 'KILL' | null;
  /** Processes of its group were still there after the hook itself had exited: killed with
   * SIGKILL after a timeout, left running (background processes it started) otherwise. */
  outlived: boolean;
  durationMs: number;
  output: string; // stdout + stderr, at most OUTPUT_MAX bytes
  error?: string; // spawn failure (ENOENT, EACCES)
}

const OUTPUT_MAX = 16 * 1024;
/** From SIGTERM to SIGKILL, after a timeout. */
export const GRACE_MS = 1000;
/** After the hook's exit: output it wrote last still arrives, its group is looked at. */
const SETTLE_MS = 50;
/** After timeout, how often to look whether the group is gone. */
const POLL_MS = 50;

/** Some process of process group `pgid` is still running. kill(-pgid, 0) answers first (no
 * such group: none); it also counts zombies, members that have ended but whose exit status their
 * new parent (init) has not collected yet, which a lazy init may leave for a second or more. So
 * when it says yes, /proc decides: a member whose state is not Z or X. That is a scan of every
 * /proc/PID/stat, done only when the group exists after the hook has exited (a hook left
 * something behind, or a timed-out hook's grace period, every POLL_MS), never on the data path.
 * When /proc is not this PID namespace's (its /proc/self is not our PID), kill() is trusted. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return liveMember(pgid) ?? true;
}

function liveMember(pgid: number): boolean | undefined {
  let names: string[];
  try {
    if (fs.readlinkSync('/proc/self') !== String(process.pid)) return undefined;
    names = fs.readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const name of names) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    let st: string;
    try {
      st = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // ended meanwhile
    }
    // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses, the last ')' ends it.
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ', 3);
    if (Number(f[2]) === pgid && f[0] !== 'Z' && f[0] !== 'X') return true;
  }
  return false;
}

export function runHook(file: string, args: string[], timeoutMs: number): Promise<HookResult> {
  const started = monoMs();
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let killed: HookResult['killed'] = null;
    let outlived = false;
    let exited: { code: number | null; signal: string | null } | null = null;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number, fn: () => void): void => void timers.push(setTimeout(fn, ms));
    const finish = (r: { code: number | null; signal: string | null; error?: string }): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      clearInterval(poll);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ file, args, timedOut, killed, outlived, durationMs: monoMs() - started, output, ...r });
    };
    const take = (b: Buffer): void => {
      if (output.length < OUTPUT_MAX) output += b.toString('utf8', 0, Math.min(b.length, OUTPUT_MAX - output.length));
    };
    // Own process group (detached): the group is everything the hook started (see the header).
    // As an ordinary process, not in the main thread's SCHED_BATCH (src/io/sched.ts).
    const child = spawnNormally(() => spawn(file, args, { shell: false, stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
    const pid = child.pid;
    if (pid !== undefined) trackChild(pid);
    let poll: NodeJS.Timeout | undefined;
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        if (pid !== undefined) process.kill(-pid, sig);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') child.kill(sig);
      }
    };
    // Settling waits SETTLE_MS after the hook's exit: a background process the hook left behind
    // may hold the pipes open for ever ('close' may never come), but output already written
    // arrives by then.
    const settle = (): void => after(SETTLE_MS, () => finish(exited ?? { code: null, signal: null }));
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    after(timeoutMs, () => {
      if (exited !== null) return;
      timedOut = true;
      killed = 'TERM';
      signalGroup('SIGTERM');
      poll = setInterval(() => {
        if (exited !== null && pid !== undefined && !groupAlive(pid)) {
          clearInterval(poll);
          settle();
        }
      }, POLL_MS);
      after(GRACE_MS, () => {
        clearInterval(poll);
        if (exited !== null && pid !== undefined) outlived = groupAlive(pid);
        killed = 'KILL';
        signalGroup('SIGKILL');
        if (exited !== null) settle();
        // A process in uninterruptible sleep dies only when it wakes: report without its exit
        // status rather than hold the endpoint's hook queue for ever.
        else after(GRACE_MS, () => finish({ code: null, signal: null }));
      });
    });
    child.on('error', (e) => {
      if (pid === undefined) finish({ code: null, signal: null, error: e.message });
    });
    child.on('exit', (code, signal) => {
      if (pid !== undefined) untrackChild(pid);
      exited = { code, signal };
      if (!timedOut) {
        // Ended by itself: its background processes, if any, are left alone (see the header).
        after(SETTLE_MS, () => {
          if (pid !== undefined) outlived = groupAlive(pid);
          finish({ code, signal });
        });
      } else if (killed === 'KILL') settle();
      // else: SIGTERM sent; the poll reports once the group is gone, or the grace period ends.
    });
  });
}

/** Runs tasks one after another per key (per endpoint): a DESTROY never overtakes its CREATE. */
export class SerialQueues {
  private readonly tails = new Map<string, Promise<void>>();
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const p = prev.then(task, task);
    const tail = p.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return p;
  }
  get size(): number {
    return this.tails.size;
  }
}
