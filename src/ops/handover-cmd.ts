// `gwlbtun handover [--pid PID] [--unit UNIT] [--timeout SECS]`: sends SIGUSR2 to the running
// gwlbtun's main process and waits until it is known what came of it (docs/operations.md,
// "Upgrading in place"). For the packages' scriptlets (scripts/package.js) and for operators: a
// signal alone tells nothing, and a hand-over that was refused, or fell back to a restart, looks
// from outside much like one that worked.
//
// Exit status: 0 a new process took over (the old PID is gone, the new one runs and, under
// systemd, is the unit's MainPID); 1 it did not happen and the running gwlbtun carries on
// (refused, the new process failed, or no outcome within --timeout); 2 it fell back to a restart
// (the new build reads another hand-over version: the running one shuts down, DESTROY hooks run,
// and the new one starts afresh); 3 nothing to hand over (no running gwlbtun found) or a usage
// error. One line on stdout says what happened (stderr for 1 and 3).
//
// Decisions:
// - Which process: --pid; else systemd's `systemctl show -p MainPID --value UNIT` (when systemctl
//   runs and names one); else the PID file of the runtime directory
//   (src/control/handover-status.ts). The process must be a gwlbtun (its command line names
//   gwlbtun) that catches SIGUSR2 (SigCgt in /proc/PID/status): the signal's default action ends a
//   process, so neither a stale PID file pointing at another program nor a gwlbtun older than the
//   hand-over (a package upgrade from such a version) may get it; those exit 3 and the scriptlet
//   restarts instead.
// - How the outcome is known: the record the process writes in the runtime directory
//   (handover-<PID>.json, src/control/handover-status.ts), whose `seq` is noted before the signal
//   is sent, so that only the answer to this signal counts. Without a runtime directory there is
//   no record: refused up front (exit 3), the signal is not sent.
// - Bounded: --timeout (default 30 s; a hand-over itself is bounded by about 17 s) for the whole
//   wait, polled every 50 ms. After `done`: the old PID gone and the new one alive, and under
//   systemd MainPID equal to the new PID (the old process sends MAINPID= before it exits; a
//   unit that is not Type=notify never learns it, and systemd then stops the new one: exit 1).
// - Everything it touches from outside (signals, files, systemctl, the clock) comes in as
//   HandOverDeps, so that the unit tests play each outcome without a daemon.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FINAL_PHASES, parseRecord, PID_FILE, recordFile, runtimeDir, type HandOverRecord } from '../control/handover-status';

export const HANDOVER_HELP = `gwlbtun handover: upgrade the running gwlbtun in place (SIGUSR2) and wait for the outcome
Usage: gwlbtun handover [--pid PID] [--unit UNIT] [--timeout SECS]

Sends SIGUSR2 to the running gwlbtun's main process, which starts gwlbtun again from the same
path with the same arguments and hands its sockets, interfaces and flows over (no hook runs), and
waits until that is done, refused or failed (docs/operations.md, "Upgrading in place").

Options:
  -h, --help        Print this help and exit.
  --pid PID         The running gwlbtun's PID. Default: the MainPID of UNIT under systemd, else
                    the PID file in the runtime directory.
  --unit UNIT       The systemd unit (default gwlbtun.service).
  --timeout SECS    Wait at most SECS for the outcome (default 30, 1 to 3600).

The outcome is read from the runtime directory ($RUNTIME_DIRECTORY, else /run/gwlbtun: the unit's
RuntimeDirectory=), where gwlbtun writes its PID file and handover-<PID>.json; run this command
with the same RUNTIME_DIRECTORY as gwlbtun (or none under systemd), as root or the gwlbtun user.

Exit status: 0 a new process took over; 1 it did not happen (refused, the new process failed,
or no outcome in time): the running gwlbtun carries on; 2 it fell back to a restart (the new
build reads another hand-over version); 3 no running gwlbtun found, or a usage error.
`;

export const EXIT_DONE = 0;
export const EXIT_NOT_DONE = 1;
export const EXIT_FALLBACK = 2;
export const EXIT_USAGE = 3;

/** What the command touches outside itself. */
export interface HandOverDeps {
  env: NodeJS.ProcessEnv;
  /** process.kill(pid, sig): throws ESRCH when there is no such process. */
  kill(pid: number, sig: NodeJS.Signals | 0): void;
  /** A file's text, or null when it cannot be read. */
  read(file: string): string | null;
  exists(p: string): boolean;
  /** `systemctl ARGS`: its exit status and stdout; null when systemctl cannot be run. */
  systemctl(args: string[]): { status: number; stdout: string } | null;
  /** A process's state: null when there is none, else its command line, whether it is a zombie,
   * and whether it catches SIGUSR2. */
  proc(pid: number): ProcInfo | null;
  nowMs(): number;
  sleep(ms: number): Promise<void>;
  out(line: string): void;
  err(line: string): void;
}

export interface ProcInfo {
  cmdline: string;
  zombie: boolean;
  catchesUsr2: boolean;
}

/** SIGUSR2 is signal 12 on Linux (every architecture Node runs on): bit 11 of SigCgt. */
const SIGUSR2_BIT = 1n << 11n;

/** From /proc/PID/status: whether SIGUSR2 is caught (SigCgt, a hex mask). */
export function catchesUsr2(status: string): boolean {
  const m = /^SigCgt:\s*([0-9a-fA-F]+)$/m.exec(status);
  return m !== null && (BigInt('0x' + m[1]) & SIGUSR2_BIT) !== 0n;
}

export const realDeps: HandOverDeps = {
  env: process.env,
  kill: (pid, sig) => process.kill(pid, sig),
  read: (f) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return null;
    }
  },
  exists: (p) => fs.existsSync(p),
  systemctl: (args) => {
    const r = spawnSync('systemctl', args, { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'ignore'] });
    return r.error !== undefined || r.status === null ? null : { status: r.status, stdout: r.stdout };
  },
  proc: (pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      return { cmdline, zombie: stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z'), catchesUsr2: catchesUsr2(status) };
    } catch {
      return null;
    }
  },
  nowMs: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
};

const POLL_MS = 50;

function alive(deps: HandOverDeps, pid: number): boolean {
  const p = deps.proc(pid);
  return p !== null && !p.zombie;
}

function mainPid(deps: HandOverDeps, unit: string): number | null {
  const r = deps.systemctl(['show', '-p', 'MainPID', '--value', unit]);
  if (r === null || r.status !== 0) return null;
  const n = Number(r.stdout.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

function readRecord(deps: HandOverDeps, dir: string, pid: number): HandOverRecord | null {
  const text = deps.read(path.join(dir, recordFile(pid)));
  if (text === null) return null;
  const r = parseRecord(text);
  return typeof r === 'string' || r.pid !== pid ? null : r;
}

export async function handOverMain(argv: string[], deps: HandOverDeps = realDeps): Promise<number> {
  let values: { help?: boolean; pid?: string; unit?: string; timeout?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { help: { type: 'boolean', short: 'h' }, pid: { type: 'string' }, unit: { type: 'string' }, timeout: { type: 'string' } },
    }));
  } catch (e) {
    deps.err(`gwlbtun handover: ${(e as Error).message.split('\n')[0]} (see gwlbtun handover -h)`);
    return EXIT_USAGE;
  }
  if (values.help === true) {
    deps.out(HANDOVER_HELP.trimEnd());
    return EXIT_DONE;
  }
  const usage = (msg: string): number => {
    deps.err(`gwlbtun handover: ${msg}`);
    return EXIT_USAGE;
  };
  const timeoutS = values.timeout === undefined ? 30 : /^\d+$/.test(values.timeout) ? Number(values.timeout) : NaN;
  if (!(timeoutS >= 1 && timeoutS <= 3600)) return usage(`--timeout: '${values.timeout}' is not a whole number of seconds from 1 to 3600`);
  if (values.pid !== undefined && !/^[1-9]\d{0,9}$/.test(values.pid)) return usage(`--pid: '${values.pid}' is not a PID`);
  const unit = values.unit ?? 'gwlbtun.service';
  const dir = runtimeDir(deps.env, deps.exists);
  if (dir === null) return usage(`no runtime directory (${deps.env.RUNTIME_DIRECTORY ?? '/run/gwlbtun'} does not exist): the outcome could not be seen, so nothing was sent (create it, or set RUNTIME_DIRECTORY as gwlbtun has it, and restart gwlbtun once)`);

  // Which process.
  const underSystemd = values.pid === undefined ? mainPid(deps, unit) : null;
  let pid: number;
  let from: string;
  if (values.pid !== undefined) [pid, from] = [Number(values.pid), '--pid'];
  else if (underSystemd !== null) [pid, from] = [underSystemd, `${unit}'s MainPID`];
  else {
    const text = deps.read(path.join(dir, PID_FILE));
    const n = text === null ? NaN : Number(text.trim());
    if (!(Number.isSafeInteger(n) && n > 0)) return usage(`no running gwlbtun found (no --pid, no MainPID of ${unit}, ${text === null ? 'no' : 'no valid'} ${path.join(dir, PID_FILE)})`);
    [pid, from] = [n, path.join(dir, PID_FILE)];
  }
  const p = deps.proc(pid);
  if (p === null || p.zombie) return usage(`PID ${pid} (${from}) is not running`);
  if (!/gwlbtun/.test(p.cmdline)) return usage(`PID ${pid} (${from}) is not gwlbtun (${p.cmdline.slice(0, 120)}): no signal sent`);
  if (!p.catchesUsr2) return usage(`PID ${pid} (${from}) does not handle SIGUSR2 (a gwlbtun older than the hand-over?): no signal sent, its default action would end the process; restart it instead`);

  // Send, then wait for the answer to this signal.
  const seq0 = readRecord(deps, dir, pid)?.seq ?? 0;
  try {
    deps.kill(pid, 'SIGUSR2');
  } catch (e) {
    return usage(`cannot signal PID ${pid}: ${(e as Error).message}`);
  }
  const deadline = deps.nowMs() + timeoutS * 1000;
  let rec: HandOverRecord | null = null;
  for (;;) {
    rec = readRecord(deps, dir, pid);
    if (rec !== null && rec.seq > seq0 && FINAL_PHASES.includes(rec.phase)) break;
    if (deps.nowMs() >= deadline) {
      const state = rec !== null && rec.seq > seq0 ? `last: ${rec.phase}${rec.newPid !== null ? ` (new PID ${rec.newPid})` : ''}` : 'nothing recorded';
      deps.err(`gwlbtun handover: no outcome within ${timeoutS} s (${state}); PID ${pid} ${alive(deps, pid) ? 'still runs' : 'is gone'}`);
      return EXIT_NOT_DONE;
    }
    await deps.sleep(POLL_MS);
  }
  const newPid = rec.newPid;
  if (rec.phase === 'refused' || rec.phase === 'failed') {
    deps.err(`gwlbtun handover: PID ${pid} ${rec.phase === 'refused' ? 'refused the hand-over' : `could not hand over${newPid !== null ? ` to PID ${newPid}` : ''}`} (${rec.reason}); it carries on`);
    return EXIT_NOT_DONE;
  }
  if (rec.phase === 'fallback') {
    deps.out(`gwlbtun handover: PID ${newPid} cannot take over from PID ${pid} (${rec.reason}): falling back to a restart (PID ${pid} shuts down, DESTROY hooks run, then PID ${newPid} starts afresh)`);
    return EXIT_FALLBACK;
  }
  // done: the old one exits, the new one runs (and under systemd is the main process).
  const settled = (): string | null => {
    if (alive(deps, pid)) return `PID ${pid} still runs`;
    if (newPid === null || !alive(deps, newPid)) return `the new PID ${newPid} does not run`;
    if (underSystemd !== null) {
      const m = mainPid(deps, unit);
      if (m !== newPid) return `systemd's MainPID of ${unit} is ${m ?? 'none'}, not ${newPid} (is it Type=notify?)`;
    }
    return null;
  };
  for (;;) {
    const why = settled();
    if (why === null) break;
    if (deps.nowMs() >= deadline) {
      deps.err(`gwlbtun handover: PID ${newPid} took over from PID ${pid}, but ${why} after ${timeoutS} s`);
      return EXIT_NOT_DONE;
    }
    await deps.sleep(POLL_MS);
  }
  deps.out(`gwlbtun handover: PID ${newPid} took over from PID ${pid} (${rec.reason}); no hook ran`);
  return EXIT_DONE;
}
