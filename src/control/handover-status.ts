// What a hand-over came to, written where `gwlbtun handover` (src/ops/handover-cmd.ts) and an
// operator can read it (docs/operations.md, "Upgrading in place"): the signal itself carries no
// answer, and without systemd nothing else tells a new PID from a restart or a refusal.
//
// Decisions:
// - Where: the runtime directory, $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=, /run/gwlbtun
//   with the shipped unit; its first entry when it lists several) or else /run/gwlbtun, the same
//   directory the example hooks take their lock in. Only when it exists: gwlbtun creates nothing
//   in /run of its own accord (a daemon started by hand, a test, writes no file unless asked).
// - What: `gwlbtun.pid`, the main process's PID (written once started, and by a new process once
//   it has taken over; removed at exit when it still names this process), and one record per
//   process that got SIGUSR2, `handover-<its PID>.json`: one JSON object, {pid, seq, phase,
//   newPid, reason} (no time of day: docs/architecture.md, "Time"; the file's mtime has it). `seq` counts the SIGUSR2 that process got, so that a reader that noted
//   it before sending the signal knows which answer is to its own. Phases: `started` (a new
//   process runs: newPid), then one of `done` (it took over; the old one exits 0), `failed` (it
//   was killed or exited; this process carries on), `fallback` (it reads another hand-over
//   version: this process shuts down as on SIGTERM and the new one starts afresh), or `refused`
//   (nothing was started: a hook running, draining, still starting...).
// - How: written to a temporary file and renamed over the record, so that a reader sees a whole
//   record or the previous one, never half of one. A file that cannot be written is logged once
//   and otherwise ignored: the hand-over never depends on it.
// - Reading (parseRecord): anything that is not such a record (truncated, another program's, an
//   older format) is a reason, never an exception.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../base/log';

export type HandOverPhase = 'started' | 'refused' | 'failed' | 'fallback' | 'done';
const PHASES: readonly string[] = ['started', 'refused', 'failed', 'fallback', 'done'];
/** The phases after which nothing more is written for that signal. */
export const FINAL_PHASES: readonly HandOverPhase[] = ['refused', 'failed', 'fallback', 'done'];

export interface HandOverRecord {
  /** The process that got SIGUSR2. */
  pid: number;
  /** Its SIGUSR2 count when this was written (1 for the first). */
  seq: number;
  phase: HandOverPhase;
  /** The new process, once there is one. */
  newPid: number | null;
  reason: string;
}

export const PID_FILE = 'gwlbtun.pid';
export const recordFile = (pid: number): string => `handover-${pid}.json`;

/** The runtime directory for `env` (see the header); null when it does not exist. */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env, exists: (p: string) => boolean = fs.existsSync): string | null {
  const fromEnv = (env.RUNTIME_DIRECTORY ?? '').split(':')[0];
  const dir = fromEnv !== '' ? fromEnv : '/run/gwlbtun';
  return exists(dir) ? dir : null;
}

/** A record from a file's text, or why it is none. */
export function parseRecord(text: string): HandOverRecord | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (typeof o !== 'object' || o === null) return 'not a JSON object';
  const r = o as Record<string, unknown>;
  const posInt = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;
  if (!posInt(r.pid) || !posInt(r.seq)) return 'no pid or seq';
  if (typeof r.phase !== 'string' || !PHASES.includes(r.phase)) return `unknown phase ${JSON.stringify(r.phase)}`;
  if (!(r.newPid === null || posInt(r.newPid))) return 'bad newPid';
  if (typeof r.reason !== 'string') return 'no reason';
  return { pid: r.pid as number, seq: r.seq as number, phase: r.phase as HandOverPhase, newPid: r.newPid as number | null, reason: r.reason };
}

/** This process's files in the runtime directory (none when there is no such directory). */
export class HandOverStatus {
  private seq = 0;
  private warned = false;

  constructor(
    private readonly log: Logger,
    readonly dir: string | null = runtimeDir(),
    private readonly pid: number = process.pid,
  ) {}

  /** SIGUSR2 arrived: what is recorded from now on answers it. */
  signalled(): void {
    this.seq++;
  }

  record(phase: HandOverPhase, newPid: number | null, reason: string): void {
    const rec: HandOverRecord = { pid: this.pid, seq: this.seq, phase, newPid, reason };
    this.write(recordFile(this.pid), JSON.stringify(rec) + '\n');
  }

  /** This process is the main one now. */
  writePid(): void {
    this.write(PID_FILE, `${this.pid}\n`);
  }

  /** At exit: the PID file goes when it still names this process (after a hand-over it names the
   * new one already). */
  removePid(): void {
    if (this.dir === null) return;
    const f = path.join(this.dir, PID_FILE);
    try {
      if (fs.readFileSync(f, 'utf8').trim() === String(this.pid)) fs.rmSync(f);
    } catch {
      // none, or not ours to remove
    }
  }

  private write(name: string, text: string): void {
    if (this.dir === null) return;
    const f = path.join(this.dir, name);
    const tmp = `${f}.${this.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, text, { mode: 0o644 });
      fs.renameSync(tmp, f);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      if (!this.warned) this.log.important('core', `hand-over status: cannot write ${f} (${(e as Error).message}); gwlbtun handover cannot see outcomes`);
      this.warned = true;
    }
  }
}
