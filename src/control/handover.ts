// The hand-over (SIGUSR2, docs/operations.md "Upgrading in place"): the running gwlbtun starts a
// new gwlbtun from the same path with the same arguments, passes it everything that carries
// traffic, and exits once the new one carries it -- no interface destroyed, no hook run, no flow
// forgotten, nothing queued lost.
//
// Decisions:
// - No new sockets, no new queues: the old process passes its own descriptors. child_process.spawn
//   maps extra `stdio` entries to fd 3, 4, ... in the child (dup2 there clears close-on-exec): fd 3
//   is the channel (a socket pair), fd 4 on the UDP socket of every worker, then every endpoint's
//   gwi- and gwo- queue of every worker, then (--offload on) every worker's queue of the send
//   device `gwlbtx0` (src/control/workers.ts). The kernel's queues never change owner, so nothing queued
//   on them is lost or steered elsewhere while the workers change, no interface is re-created and
//   no hook runs; the user's firewall state and conntrack stay. The raw sockets only send: the new
//   process opens its own.
// - Sequence. Old: SIGUSR2 -> spawn (GWLBTUN_HANDOVER="<version> <descriptors>" in its environment).
//   New: parses its flags, reads the version and, if it can read that version, says `ready`.
//   Old: stops its workers (each finishes its batch; nothing is drained or detached:
//   WorkerSupervisor.handOff), closes its health listener (-p), writes one JSON line (endpoints:
//   ENI, slot and generation, which descriptors; the UDP sockets; the time its workers stopped)
//   and the flow table's occupied entries as one binary block (FlowTable.snapshotInto: 120 bytes a
//   flow, written into one buffer, no object per flow). New: adopts the endpoints (same slots, same
//   endpoint ids, so the flows' keys stay valid), restores the flows, starts its workers on the
//   inherited descriptors, binds -p (the old one closed it just before: health checks get no
//   answer for the pause, 150-200 ms measured with two workers on a busy 2-core machine), says
//   `done`. Old: tells systemd the new main PID, exits 0, with no DESTROY hook and nothing closed
//   but its own copies. Packets arriving in the pause wait in the socket and TUN queues; the pause
//   (old workers stopped to new workers up) is logged by the new process.
// - Versioned: HANDOVER_VERSION names everything after the environment variable (the JSON line and
//   the record layout). The environment variable itself ("<version> <count>", descriptors from 4)
//   and the `fallback` line are what every version reads alike. A new process that reads another
//   version closes the descriptors it inherited, says `fallback`, logs one line, waits for the old
//   one to shut down as on SIGTERM (DESTROY hooks, interfaces gone) and then starts as on a
//   restart.
// - Never worse than doing nothing: a new process that exits, says `fail`, or does not say
//   `ready` within READY_TIMEOUT_MS (or `done` within DONE_TIMEOUT_MS of the state) is killed (by
//   its PID) and the old one carries on: its workers start again on the same sockets, its health
//   listener opens again. A hand-over is refused (logged, nothing changes) while an endpoint is
//   being created or destroyed, while draining or stopping.
// - What came of each SIGUSR2 is recorded for `gwlbtun handover` (HandOverHost.record,
//   src/control/handover-status.ts): started, then done, failed, fallback; or refused.
// - systemd (Type=notify, examples/systemd/gwlbtun.service): gwlbtun sends READY=1 once started,
//   and the old process, the service's main process until it exits, sends MAINPID=<the new PID>
//   right before its exit (after `done`, and after a fallback's shutdown too), so that systemd
//   follows the new one and the old one's exit is not the service's end. Sent by the process
//   itself (sd_notify through the addon, not systemd-notify), the default NotifyAccess=main
//   accepts it. SIGHUP stays the endpoints file's reload.

import { spawn } from 'node:child_process';
import * as net from 'node:net';
import type { Logger } from '../base/log';
import { monoMs } from '../base/clock';
import { native } from '../io/native';
import { MAX_FLOWS_LIMIT, SNAPSHOT_RECORD_WORDS } from '../flow/table';
import type { Adopted, Daemon } from './daemon';
import type { DaemonOptions } from './options';
import type { HandedEndpoint } from './endpoints';
import type { HandedSendDevice } from './workers';
import type { HandOverPhase } from './handover-status';

/** The layout of the state after the environment variable; a change of it gets a new number.
 * 2: the send device of --offload on (StateLine.sendDevice). */
export const HANDOVER_VERSION = 2;
export const HANDOVER_ENV = 'GWLBTUN_HANDOVER';
/** The channel in the new process; the passed descriptors follow it. */
const CHANNEL_FD = 3;
const FIRST_FD = 4;
/** From spawn to `ready`: Node's start-up and the flags (a second or so on a busy machine). */
export const READY_TIMEOUT_MS = 5000;
/** From the state written to `done`: the flows restored, the workers up. */
export const DONE_TIMEOUT_MS = 10000;
/** The longest JSON line accepted (4096 endpoints of 256 workers' queues fit well). */
const MAX_HEADER_BYTES = 64 << 20;

/** The JSON line: what the old process had (descriptors as numbered in the new one). */
export interface StateLine {
  version: number;
  pid: number;
  workers: number;
  noReturn: boolean;
  /** monoMs() when its workers began to stop (the machine's monotonic clock: the same in both). */
  stoppedAtMs: number;
  udpFds: number[];
  endpoints: HandedEndpoint[];
  flowCount: number;
  recordWords: number;
  /** The send device of --offload on, or null (none, or --offload off). */
  sendDevice: HandedSendDevice | null;
}

/** Test knobs (GWLBTUN_FAILPOINT): handover-version:N makes the new process read version N only;
 * handover-exit makes it exit before it says `ready`. Read on the new process's side only. */
function failpoint(): { version: number; exit: boolean } {
  const fp = process.env.GWLBTUN_FAILPOINT ?? '';
  const m = /^handover-version:(\d+)$/.exec(fp);
  return { version: m !== null ? Number(m[1]) : HANDOVER_VERSION, exit: fp === 'handover-exit' };
}

/** sd_notify(3), when systemd gave us a notification socket (Type=notify): sent by this process
 * itself (the addon), so that the default NotifyAccess=main accepts it. Failures are logged,
 * never fatal. */
export function notifySystemd(log: Logger, fields: string[]): void {
  const path = process.env.NOTIFY_SOCKET;
  if (path === undefined || path === '') return;
  const r = native().sdNotify(path, fields.join('\n'));
  if (r !== 0) log.important('core', `sd_notify ${fields.join(' ')} to ${path} failed (errno ${-r})`);
}

/** Splits what arrives on the channel into lines (the old process's side reads only lines). */
function onLines(sock: net.Socket, each: (line: string) => void): void {
  let buf = '';
  sock.setEncoding('latin1');
  sock.on('data', (s: string) => {
    buf += s;
    if (buf.length > 65536) buf = ''; // no line of ours is that long
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      each(line);
    }
  });
}

// ---- the old process -------------------------------------------------------------------------

/** What the hand-over needs around the daemon (src/cli.ts). */
export interface HandOverHost {
  /** Close the health listener (-p), so that the new process can bind it. */
  closeHealth(): void;
  /** Open it again: the hand-over failed. */
  reopenHealth(): Promise<void>;
  /** Shut down as on SIGTERM (the new process falls back to a restart). */
  shutdown(): void;
  exit(code: number): void;
  /** What came of the signal, for `gwlbtun handover` (src/control/handover-status.ts). */
  record(phase: HandOverPhase, newPid: number | null, reason: string): void;
}

export class HandOverSource {
  private running = false;
  /** The new process that carries on once this one exits (after `done`, or a fallback). */
  private successor: number | null = null;

  constructor(
    private readonly d: Daemon,
    private readonly log: Logger,
    private readonly host: HandOverHost,
  ) {}

  /** Right before this process exits: when a new process carries on, systemd is told it is the
   * main process now (MAINPID=, from us: we are the main process until then, so NotifyAccess=main
   * accepts it; systemd reads notifications before the exit of their sender). */
  beforeExit(): void {
    if (this.successor !== null) notifySystemd(this.log, [`MAINPID=${this.successor}`]);
  }

  /** SIGUSR2. */
  signal(): void {
    if (this.running) {
      this.log.important('core', 'SIGUSR2: a hand-over is already under way');
      this.host.record('refused', null, 'a hand-over is already under way');
      return;
    }
    const why = this.d.handOverBlocker();
    if (why !== null) {
      this.log.important('core', `SIGUSR2: no hand-over now (${why}); nothing changed`);
      this.host.record('refused', null, why);
      return;
    }
    this.running = true;
    this.handedOff = false;
    this.healthClosed = false;
    this.run().catch(async (e: Error) => {
      // Whatever went wrong (spawn refused, the snapshot's memory): back to how it was.
      this.log.critical('core', `hand-over failed (${e.message}); this process carries on`);
      this.host.record('failed', null, e.message);
      await this.restore();
      this.running = false;
    });
  }

  /** handOff() was called: the workers are stopped. */
  private handedOff = false;
  /** The health listener is closed. */
  private healthClosed = false;

  /** Undo what the hand-over did so far: workers, health listener. */
  private async restore(): Promise<void> {
    if (this.handedOff) await this.d.resume().catch((e: Error) => this.log.critical('core', `workers: ${e.message}`));
    if (this.healthClosed) await this.host.reopenHealth().catch((e: Error) => this.log.critical('core', `health check port: ${e.message}`));
    this.handedOff = this.healthClosed = false;
  }

  private async run(): Promise<void> {
    const before = this.d.handOverState();
    const fds = [...before.udpFds, ...before.endpoints.flatMap((e) => [...e.gwiFds, ...e.gwoFds]), ...(before.sendDevice?.fds ?? [])];
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: ['inherit', 'inherit', 'inherit', 'pipe', ...fds],
      env: { ...process.env, [HANDOVER_ENV]: `${HANDOVER_VERSION} ${fds.length}` },
    });
    const pid = child.pid ?? -1;
    this.host.record('started', pid > 0 ? pid : null, '');
    this.log.important('core', `SIGUSR2: handing over to a new process (PID ${pid}: ${process.argv[1]}, ${before.endpoints.length} endpoint(s), ${fds.length} descriptor(s))`);
    const ch = child.stdio[CHANNEL_FD] as net.Socket;
    const lines: string[] = [];
    let wake: (() => void) | null = null;
    let exited = false;
    onLines(ch, (l) => {
      lines.push(l);
      wake?.();
    });
    ch.on('error', () => undefined); // a dead child: its exit says so
    child.on('exit', () => {
      exited = true;
      wake?.();
    });
    /** The next line, or null: the child exited or the time ran out. */
    const next = async (ms: number): Promise<string | null> => {
      const deadline = monoMs() + ms;
      while (lines.length === 0 && !exited && monoMs() < deadline) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.max(1, deadline - monoMs()));
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = null;
      }
      return lines.shift() ?? null;
    };
    const giveUp = async (what: string): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); // by its PID
      ch.destroy();
      // Gone before our workers read the sockets again (bounded: a SIGKILLed process is).
      const deadline = monoMs() + 2000;
      while (!exited && monoMs() < deadline) await new Promise((r) => setTimeout(r, 10));
      await this.restore();
      this.log.critical('core', `hand-over to PID ${pid} failed (${what}); this process carries on`);
      this.host.record('failed', pid > 0 ? pid : null, what);
      this.running = false;
    };

    const first = await next(READY_TIMEOUT_MS);
    if (first === null || !(first === 'ready' || first.startsWith('fallback'))) {
      return giveUp(first === null ? (exited ? 'it exited before it was ready' : `not ready within ${READY_TIMEOUT_MS} ms`) : `it said '${first.slice(0, 200)}'`);
    }
    if (first.startsWith('fallback')) return this.fallback(pid, first);

    // Ready: stop reading, and pass the state on.
    const stoppedAtMs = monoMs();
    this.handedOff = true;
    await this.d.handOff();
    const now = this.d.handOverState();
    const changed = this.d.handOverBlocker(false) ?? (sameEndpoints(before.endpoints, now.endpoints) ? null : 'the endpoints changed');
    if (changed !== null) return giveUp(`${changed} meanwhile`);
    this.healthClosed = true;
    this.host.closeHealth();
    const map = new Map<number, number>(fds.map((fd, i) => [fd, FIRST_FD + i]));
    const to = (fd: number): number => map.get(fd) ?? -1;
    const flows = this.d.flows;
    const t0 = monoMs();
    const recs = new Int32Array(flows === null ? 0 : (flows.size() + 64) * SNAPSHOT_RECORD_WORDS);
    const flowCount = flows === null ? 0 : flows.snapshotInto(recs);
    const snapMs = monoMs() - t0;
    const state: StateLine = {
      version: HANDOVER_VERSION,
      pid: process.pid,
      workers: this.d.opts.workers,
      noReturn: this.d.opts.noReturn,
      stoppedAtMs,
      udpFds: now.udpFds.map(to),
      endpoints: now.endpoints.map((e) => ({ ...e, gwiFds: e.gwiFds.map(to), gwoFds: e.gwoFds.map(to) })),
      flowCount,
      recordWords: SNAPSHOT_RECORD_WORDS,
      // The raw-or-device choice and the addresses as they are now, the queues as passed.
      sendDevice: now.sendDevice === null ? null : { ...now.sendDevice, fds: now.sendDevice.fds.map(to) },
    };
    ch.write(JSON.stringify(state) + '\n');
    ch.write(new Uint8Array(recs.buffer, 0, flowCount * SNAPSHOT_RECORD_WORDS * 4));
    const last = await next(DONE_TIMEOUT_MS);
    if (last !== null && last.startsWith('done')) {
      this.log.important('core', `hand-over to PID ${pid} done (${flowCount} flow(s) passed, snapshot ${snapMs.toFixed(1)} ms): exiting without DESTROY hooks; the interfaces stay`);
      this.successor = pid;
      this.host.record('done', pid, `${flowCount} flow(s) passed`);
      this.host.exit(0);
      return;
    }
    return giveUp(last === null ? (exited ? 'it exited' : `not done within ${DONE_TIMEOUT_MS} ms`) : `it said '${last.slice(0, 200)}'`);
  }

  /** The new process cannot read our hand-over: stop as on SIGTERM; it starts once we are gone. */
  private fallback(pid: number, line: string): void {
    this.successor = pid;
    this.host.record('fallback', pid, `it ${line.slice('fallback '.length, 300)}`);
    this.log.important('core', `hand-over to PID ${pid}: it ${line.slice('fallback '.length, 300)}; shutting down so that it starts anew (a restart: DESTROY, then CREATE hooks run)`);
    this.host.shutdown();
  }
}

function sameEndpoints(a: HandedEndpoint[], b: HandedEndpoint[]): boolean {
  if (a.length !== b.length) return false;
  const ids = new Set(a.map((e) => `${e.hex}/${e.epId}`));
  return b.every((e) => ids.has(`${e.hex}/${e.epId}`));
}

// ---- the new process -------------------------------------------------------------------------

/** Why the state's send device cannot be taken over, or null (none is fine: the old process had
 * none, e.g. a kernel without the offloads, or -x). */
export function sendDeviceProblem(sd: HandedSendDevice | null | undefined, opts: Pick<DaemonOptions, 'offload' | 'workers'>, inRange: (fd: number) => boolean): string | null {
  if (sd === null) return null;
  if (typeof sd !== 'object' || sd === undefined) return 'missing';
  if (!opts.offload) return 'the running gwlbtun has --offload on, this one off';
  if (sd.tier !== 'tunnel' && sd.tier !== 'uso') return `unknown tier ${JSON.stringify(sd.tier).slice(0, 40)}`;
  if (typeof sd.name !== 'string' || !/^[\w.-]{1,15}$/.test(sd.name)) return 'bad name';
  if (!Array.isArray(sd.fds) || sd.fds.length !== opts.workers || !sd.fds.every(inRange)) return 'descriptors out of range';
  const byte = (b: unknown): boolean => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255;
  if (!Array.isArray(sd.mac) || (sd.tier === 'tunnel' ? sd.mac.length !== 6 : sd.mac.length !== 0) || !sd.mac.every(byte)) return 'bad MAC address';
  if (typeof sd.raw !== 'boolean' || !Array.isArray(sd.gwlbIps) || sd.gwlbIps.length !== opts.workers) return 'bad egress state';
  if (!sd.gwlbIps.every((a) => Number.isInteger(a) && a >= 0 && a <= 0xffffffff)) return 'bad GWLB address';
  return null;
}

/** The new process's side, from GWLBTUN_HANDOVER (removed from the environment at once, so that
 * neither hooks nor a later hand-over see it). */
export class HandOverTarget {
  /** The old process still waits for us (not after a fallback, nor after done()). */
  pending = true;
  private readonly ch: net.Socket;
  private constructor(
    private readonly log: Logger,
    /** The version the old process wrote, and the descriptors it passed (from FIRST_FD). */
    readonly theirs: number,
    readonly count: number,
  ) {
    this.ch = new net.Socket({ fd: CHANNEL_FD, readable: true, writable: true });
    this.ch.on('error', () => undefined); // the old process died: reads end, writes go nowhere
  }

  /** null: this process was not started by a hand-over. */
  static fromEnv(log: Logger): HandOverTarget | null {
    const v = process.env[HANDOVER_ENV];
    if (v === undefined) return null;
    delete process.env[HANDOVER_ENV];
    const m = /^(\d+) (\d+)$/.exec(v);
    if (m === null || Number(m[2]) > 1 << 20) {
      log.critical('core', `${HANDOVER_ENV}='${v.slice(0, 100)}' is not a hand-over: starting as usual`);
      return null;
    }
    try {
      return new HandOverTarget(log, Number(m[1]), Number(m[2]));
    } catch (e) {
      log.critical('core', `${HANDOVER_ENV} is set but fd ${CHANNEL_FD} is no hand-over channel (${(e as Error).message}): starting as usual`);
      return null;
    }
  }

  /** Read the old process's state. null: its version is not ours -- the descriptors are closed,
   * it was told to shut down and is gone, and this process starts as on a restart. Throws when
   * the state cannot be used (the caller says fail() and exits; the old process carries on). */
  async accept(opts: DaemonOptions): Promise<{ adopted: Adopted; state: StateLine } | null> {
    const fp = failpoint();
    if (fp.exit) process.exit(1);
    if (this.theirs !== fp.version) {
      const nat = native();
      for (let i = 0; i < this.count; i++) nat.close(FIRST_FD + i);
      const gone = new Promise<void>((r) => {
        this.ch.once('close', () => r());
        this.ch.resume();
      });
      this.ch.write(`fallback reads hand-over version ${fp.version}, not ${this.theirs}\n`);
      this.log.important('core', `hand-over: the running gwlbtun wrote hand-over version ${this.theirs}, this build reads version ${fp.version}: falling back to a restart (it shuts down, DESTROY hooks run; then this one starts anew)`);
      await gone;
      this.pending = false;
      return null;
    }
    const { line, body } = await this.readState();
    const st = JSON.parse(line) as StateLine;
    const inRange = (fd: number): boolean => Number.isInteger(fd) && fd >= FIRST_FD && fd < FIRST_FD + this.count;
    if (st.version !== HANDOVER_VERSION || st.recordWords !== SNAPSHOT_RECORD_WORDS) throw new Error(`state of version ${st.version} after a version ${this.theirs} envelope`);
    if (st.workers !== opts.workers || st.noReturn !== opts.noReturn) throw new Error(`the running gwlbtun has ${st.workers} worker(s)${st.noReturn ? ' and --no-return' : ''}, this one ${opts.workers}${opts.noReturn ? ' and --no-return' : ''}`);
    if (st.udpFds.length !== opts.workers || !st.udpFds.every(inRange) || !st.endpoints.every((e) => [...e.gwiFds, ...e.gwoFds].every(inRange))) throw new Error('descriptors out of range');
    const why = sendDeviceProblem(st.sendDevice, opts, inRange);
    if (why !== null) throw new Error(`send device: ${why}`);
    // Ours now: close-on-exec again, so that no hook inherits a socket or a queue (a hook's
    // leftover process holding a queue would keep its interface alive after DESTROY).
    const nat = native();
    for (let i = 0; i < this.count; i++) nat.setCloexec(FIRST_FD + i);
    return { adopted: { udpFds: st.udpFds, endpoints: st.endpoints, flows: body, flowCount: st.flowCount, sendDevice: st.sendDevice }, state: st };
  }

  /** The JSON line, then flowCount records into one preallocated buffer. */
  private readState(): Promise<{ line: string; body: Int32Array }> {
    this.ch.write('ready\n');
    return new Promise((resolve, reject) => {
      const head: Buffer[] = [];
      let headLen = 0;
      let body: Int32Array | null = null;
      let bytes: Uint8Array | null = null;
      let filled = 0;
      let line = '';
      const fail = (e: Error): void => {
        this.ch.off('data', onData);
        reject(e);
      };
      const take = (chunk: Buffer): void => {
        const n = Math.min(chunk.length, bytes!.length - filled);
        bytes!.set(chunk.subarray(0, n), filled);
        filled += n;
      };
      const onData = (chunk: Buffer): void => {
        if (bytes === null) {
          const nl = chunk.indexOf(10);
          if (nl < 0) {
            head.push(chunk);
            headLen += chunk.length;
            if (headLen > MAX_HEADER_BYTES) fail(new Error('state line too long'));
            return;
          }
          head.push(chunk.subarray(0, nl));
          line = Buffer.concat(head).toString('utf8');
          let count: number;
          try {
            count = (JSON.parse(line) as StateLine).flowCount;
          } catch (e) {
            return fail(new Error(`state line: ${(e as Error).message}`));
          }
          if (!(Number.isInteger(count) && count >= 0 && count <= MAX_FLOWS_LIMIT * 2)) return fail(new Error(`flow count ${count}`));
          try {
            body = new Int32Array(count * SNAPSHOT_RECORD_WORDS);
          } catch (e) {
            return fail(new Error(`${count} flows: ${(e as Error).message}`));
          }
          bytes = new Uint8Array(body.buffer);
          take(chunk.subarray(nl + 1));
        } else take(chunk);
        if (filled === bytes.length) {
          this.ch.off('data', onData);
          this.ch.pause();
          resolve({ line, body: body! });
        }
      };
      this.ch.on('data', onData);
      this.ch.once('close', () => fail(new Error('the running gwlbtun went away')));
    });
  }

  /** Started: tell the old process (it tells systemd that we are the main process now, and exits). */
  done(): void {
    this.pending = false;
    this.ch.end('done\n');
  }

  /** Cannot take over: the old process carries on; this one exits without touching anything
   * (no DESTROY, nothing detached: the descriptors are the old one's too). */
  fail(why: string): never {
    this.log.critical('core', `hand-over: cannot take over (${why}); exiting, the running gwlbtun carries on`);
    try {
      this.ch.write(`fail ${why.replace(/\n/g, ' ')}\n`);
    } catch {
      // gone already
    }
    process.exit(1);
  }
}
