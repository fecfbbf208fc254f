// Worker supervision: the data-plane workers as the main thread sees them.
//
// Owns: the worker threads, the control buffer (stop flag and message sequence per worker), and
// the descriptors the main thread opens for each worker (UDP socket, raw socket, epoll set) and
// closes when that worker exits, however it exits.
// Promises: a worker that dies is restarted with back-off (1 s doubling to 30 s) unless the
// daemon is shutting down; on its exit what it had is counted as worker_died, its UDP socket is
// closed (SO_REUSEPORT gives its share to the others), and the owner (the endpoint lifecycle) is
// told, so that it detaches the worker's TUN queues and settles the acknowledgements the worker
// owed. Messages are posted only to live workers. It knows nothing of endpoints itself.
// Hand-over (SIGUSR2, src/control/handover.ts): handOff() stops every worker WITHOUT any of that --
// nothing is read from its socket or queues, nothing detached, nothing closed -- because the new
// process holds the same descriptors and reads on where the workers stopped; resume() starts them
// again on the same sockets when the hand-over fails. A supervisor started with inherited UDP
// sockets (startAll(inherited)) binds nothing and probes nothing: the sockets are already bound.
// The send device of --offload on (`gwlbtx0`) is passed the same way (sendDeviceState(), then
// startAll(inherited, send)): its queues, one per worker like the TUN queues, stay open across the
// hand-over, so the device is neither destroyed nor re-created (the kernel removes a TAP/TUN with
// its last queue, and a new one would lose its sysctls and anything queued), and the new process
// sends through the same queues at once, in the tier the old one used (its raw-or-device choice and
// the GWLB addresses its workers had seen come along; the egress watch then checks them as usual).

import { openTxTap, type TxTap } from '../io/txtap';
import { openUsoTun, type UsoTun } from '../io/usotun';
import { writeSendDeviceSettings } from './sysctl';
import { EGRESS_POLL_MS, EgressWatch } from './egress';
import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { native } from '../io/native';
import { monoMs } from '../base/clock';
import { C, type CounterReader } from '../dataplane/counters';
import { Drop } from '../wire/reasons';
import { CTRL_CELLS, CTRL_GWLB_IP, CTRL_MSG_SEQ, CTRL_STOP, CTRL_TX_RAW, type FromWorker, type ToWorker, type WorkerConfig } from '../dataplane/messages';
import { LEVEL, type Logger, type Section } from '../base/log';
import type { DaemonOptions } from './options';
import { RX_SLOT } from '../wire/sizes';
import { KEY_WORDS } from '../wire/flowkey';
import { tallyDrained } from '../wire/segment';
import { VNET_HDR_LEN } from '../wire/virtio';
import { MAX_SUPER } from '../wire/offload-common';

// What the main thread reads from a dead worker's socket and queues: at most DRAIN_ROUNDS reads of
// DRAIN_BATCH packets each (bounded work on the main thread).
const DRAIN_BATCH = 64;
const DRAIN_ROUNDS = 1024;

/** The send device as a hand-over passes it (descriptors as numbered in the receiving process). */
export interface HandedSendDevice {
  tier: 'tunnel' | 'uso';
  name: string;
  /** One queue per worker. */
  fds: number[];
  /** The TAP's MAC ('tunnel'; [] for 'uso'). */
  mac: number[];
  /** The workers send raw now (the egress watch's choice, or no GWLB address known yet). */
  raw: boolean;
  /** The GWLB address each worker saw last (0: none), for the new egress watch. */
  gwlbIps: number[];
}

/** What the supervisor needs from whoever owns the endpoints. */
export interface WorkerOwner {
  /** Worker `index` has started (or restarted) and is alive: hand it every ready endpoint. */
  workerUp(index: number): void;
  /** Worker `index` has exited: read and count (with `drain`, given the queue and its endpoint's
   * counter slot) what waits on its TUN queues, detach them, and acknowledge the removals it can
   * no longer acknowledge. Returns the packets lost (the sum of what `drain` returned). */
  workerExited(index: number, drain: (fd: number, slot: number) => number): number;
  /** Every message of a worker other than 'up' and 'log'. */
  message(m: FromWorker): void;
}

interface WorkerSlot {
  index: number;
  worker: Worker | null;
  port: MessagePort | null;
  alive: boolean;
  restarts: number;
  stopping: boolean;
  startedMs: number;
  /** Descriptors opened here for the worker and closed here when it exits (-1: none). */
  udpFd: number;
  rawFd: number;
  epFd: number;
}

export interface WorkerStatus {
  index: number;
  alive: boolean;
  restarts: number;
  heartbeatAgeMs: number;
  /** Its Geneve socket (-1 while it is down): the status page reads its receive-buffer drops. */
  udpFd: number;
}

export class WorkerSupervisor {
  private readonly ctrlSab: SharedArrayBuffer;
  private readonly ctrl: Int32Array;
  private readonly workers: WorkerSlot[] = [];
  private drainBuf: Uint8Array | null = null;
  private drainBigBuf: Uint8Array | null = null;
  private readonly nat = native();

  constructor(
    private readonly opts: DaemonOptions,
    private readonly log: Logger,
    private readonly counters: CounterReader,
    private readonly sabs: { counterSab: SharedArrayBuffer; flowSab: SharedArrayBuffer | null },
    private readonly owner: WorkerOwner,
    /** The daemon is shutting down: no restart, no loss report. */
    private readonly shuttingDown: () => boolean,
  ) {
    this.ctrlSab = new SharedArrayBuffer(opts.workers * CTRL_CELLS * 4);
    this.ctrl = new Int32Array(this.ctrlSab);
  }

  /** Start every worker; resolves once each has bound its UDP socket, rejects with the first
   * worker's setup error (port in use, missing capability). */
  async startAll(inherited: number[] | null = null, send: HandedSendDevice | null = null): Promise<void> {
    if (inherited !== null) {
      // A hand-over: the previous process's sockets, one per worker, bound and with whatever
      // arrived meanwhile still queued on them; and its send device's queues, if it had one.
      this.inheritedUdp = inherited;
      if (send !== null) {
        if (send.tier === 'tunnel') this.txTap = { name: send.name, fds: send.fds, mac: send.mac };
        else this.txUso = { name: send.name, fds: send.fds };
        for (let i = 0; i < this.opts.workers; i++) this.ctrl[i * CTRL_CELLS + CTRL_GWLB_IP] = send.gwlbIps[i] ?? 0;
        this.watchEgress(send.raw);
        this.log.important('tunnel', `offloads: ${send.name} taken over (${send.tier === 'tunnel' ? 'UDP tunnel GSO' : 'USO'} tier, returns ${send.raw ? 'through the raw socket' : `through ${send.name}`} until the egress device is checked again)`);
      }
      // Until every worker is up, a worker's exit must not touch what the old process still
      // shares (draining its socket, detaching its queues): this process then exits, and the old
      // one carries on with them.
      this.handingOff = true;
      await Promise.all(Array.from({ length: this.opts.workers }, (_, i) => this.spawnWorker(i)));
      this.handingOff = false;
      this.inheritedUdp = null; // a worker restarted later binds a socket of its own, as usual
      return;
    }
    // Probe the port without SO_REUSEPORT first: the workers bind with it, and a second process
    // bound with SO_REUSEPORT too would otherwise silently share (steal) our traffic.
    try {
      const fd = this.nat.udpOpen(this.opts.udpPort, 0, false);
      this.nat.close(fd);
    } catch (e) {
      throw withCode(e, `cannot bind UDP port ${this.opts.udpPort}`);
    }
    try {
      this.nat.close(this.nat.rawOpen(0));
    } catch (e) {
      throw withCode(e, 'cannot open a raw IPv4 socket (needs CAP_NET_RAW)');
    }
    // --offload on: the UDP tunnel GSO send tier, when the kernel has it (src/io/txtap.ts),
    // else the USO tier (src/io/usotun.ts), else the raw socket. GWLBTUN_NO_UDP_TUNNEL_GSO=1
    // leaves the first out, GWLBTUN_NO_USO=1 the second (tests of the other tiers, diagnosis).
    if (this.opts.offload && !this.opts.noReturn && !this.opts.hexDump) {
      if (process.env.GWLBTUN_NO_UDP_TUNNEL_GSO !== '1') this.txTap = openTxTap(this.nat, this.opts.workers, this.log, writeSendDeviceSettings);
      if (this.txTap === null && process.env.GWLBTUN_NO_USO !== '1') this.txUso = openUsoTun(this.nat, this.opts.workers, this.log, writeSendDeviceSettings);
      else if (this.txTap === null) this.log.important('tunnel', 'offloads: super-packets read back are cut into segments here and sent through the raw socket (GWLBTUN_NO_USO=1)');
    }
    // The egress device towards GWLB decides whether the send device may be used (a veth passes
    // its work on unfinished, src/control/egress.ts): raw until the first GWLB address is known.
    this.watchEgress(true);
    await Promise.all(Array.from({ length: this.opts.workers }, (_, i) => this.spawnWorker(i)));
  }

  /** With a send device: the workers send raw (`raw`) or through it until the egress watch, every
   * EGRESS_POLL_MS on the GWLB addresses the workers' cells hold, decides. */
  private watchEgress(raw: boolean): void {
    const tier = this.txTap !== null ? 'tunnel' : this.txUso !== null ? 'uso' : null;
    if (tier === null) return;
    this.setRawReturns(raw);
    const watch = (this.egress = new EgressWatch(this.nat, this.log, tier, this.sendDevice!, (r) => this.setRawReturns(r)));
    const seen = new Uint32Array(this.opts.workers);
    this.egressTimer = setInterval(() => {
      for (let i = 0; i < seen.length; i++) seen[i] = this.ctrl[i * CTRL_CELLS + CTRL_GWLB_IP];
      watch.poll(seen, monoMs());
    }, EGRESS_POLL_MS);
    this.egressTimer.unref();
  }

  /** Hand-over, old process: the send device to pass on (its queues stay open here too), or null. */
  sendDeviceState(): HandedSendDevice | null {
    const dev = this.txTap ?? this.txUso;
    if (dev === null) return null;
    const raw = Atomics.load(this.ctrl, CTRL_TX_RAW) !== 0;
    const gwlbIps = Array.from({ length: this.opts.workers }, (_, i) => this.ctrl[i * CTRL_CELLS + CTRL_GWLB_IP] >>> 0);
    return { tier: this.txTap !== null ? 'tunnel' : 'uso', name: dev.name, fds: [...dev.fds], mac: this.txTap?.mac ?? [], raw, gwlbIps };
  }
  private txTap: TxTap | null = null;
  private txUso: UsoTun | null = null;
  /** The UDP sockets a hand-over passed (by worker), used instead of binding new ones. */
  private inheritedUdp: number[] | null = null;
  /** handOff() is stopping the workers, or a hand-over's workers are starting: their exits leave
   * sockets and queues as they are. */
  private handingOff = false;
  private egress: EgressWatch | null = null;
  private egressTimer: NodeJS.Timeout | null = null;

  /** Every worker sends its returns through the raw socket (true) or the send device (false);
   * the cells outlive a worker, so a restarted one reads the current choice. */
  private setRawReturns(raw: boolean): void {
    for (let i = 0; i < this.opts.workers; i++) Atomics.store(this.ctrl, i * CTRL_CELLS + CTRL_TX_RAW, raw ? 1 : 0);
  }

  /** Whether the send device is in use now: null when there is none or no GWLB address is known
   * yet, false when the egress device towards GWLB sends the returns through the raw socket. */
  get sendDeviceInUse(): boolean | null {
    return this.egress?.inUse ?? null;
  }

  /** The send device of --offload on (the TAP or the USO TUN, `gwlbtx0`), or null: none. */
  get sendDevice(): string | null {
    return this.txTap?.name ?? this.txUso?.name ?? null;
  }

  private spawnWorker(index: number): Promise<void> {
    let slot = this.workers[index];
    if (slot === undefined) {
      slot = { index, worker: null, port: null, alive: false, restarts: 0, stopping: false, startedMs: 0, udpFd: -1, rawFd: -1, epFd: -1 };
      this.workers[index] = slot;
    }
    const ws = slot;
    // The worker's descriptors are opened (and later closed) here, not in the worker: a worker
    // that dies without running its cleanup must not leave its SO_REUSEPORT socket bound and
    // unread, black-holing its share of GWLB's flows.
    // After handOff() and resume() the socket is still open (kept for the new process) and is
    // used again; the epoll set is always a new one (the stopped thread's still names its queues).
    try {
      if (ws.udpFd < 0) ws.udpFd = this.inheritedUdp?.[index] ?? this.nat.udpOpen(this.opts.udpPort, this.opts.rcvbuf, true);
      if (ws.rawFd < 0) ws.rawFd = this.nat.rawOpen(this.opts.sndbuf);
      if (ws.epFd >= 0) this.nat.close(ws.epFd);
      ws.epFd = this.nat.epollCreate();
      this.nat.epollAdd(ws.epFd, ws.udpFd);
    } catch (e) {
      this.closeWorkerFds(ws);
      return Promise.reject(withCode(e, `worker ${index}`));
    }
    const { port1, port2 } = new MessageChannel();
    const cfg: WorkerConfig & { port: MessagePort } = {
      index,
      workers: this.opts.workers,
      udpPort: this.opts.udpPort,
      rcvbuf: this.opts.rcvbuf,
      sndbuf: this.opts.sndbuf,
      maxEndpoints: this.opts.maxEndpoints,
      noReturn: this.opts.noReturn,
      offload: this.opts.offload,
      txTapFd: this.txTap === null ? -1 : this.txTap.fds[index],
      txTapMac: this.txTap === null ? [] : this.txTap.mac,
      txUsoFd: this.txUso === null ? -1 : this.txUso.fds[index],
      cpus: this.opts.cpus[index] ?? null,
      holdPackets: this.opts.holdPackets,
      holdMs: this.opts.holdMs,
      allow: this.opts.allow,
      flowSab: this.sabs.flowSab,
      counterSab: this.sabs.counterSab,
      ctrlSab: this.ctrlSab,
      hexDump: this.opts.hexDump,
      ...failpointFromEnv(index, ws.startedMs === 0),
      logDrops: this.opts.hexDump || this.log.enabled('geneve', LEVEL.debug) || this.log.enabled('tunnel', LEVEL.debug),
      udpFd: ws.udpFd,
      rawFd: ws.rawFd,
      epFd: ws.epFd,
      port: port2,
    };
    Atomics.store(this.ctrl, index * CTRL_CELLS + CTRL_STOP, 0);
    const w = new Worker(path.join(__dirname, '..', 'dataplane', 'worker.js'), {
      workerData: cfg,
      transferList: [port2],
    });
    ws.worker = w;
    ws.port = port1;
    ws.alive = false;
    ws.startedMs = monoMs();
    return new Promise<void>((resolve, reject) => {
      let up = false;
      w.on('message', (m: FromWorker) => {
        if (m.t === 'up') {
          up = true;
          ws.alive = true;
          // A restarted worker gets every existing endpoint back (its TUN queues stayed open,
          // detached while it was away: descriptors belong to the process, not the thread).
          this.owner.workerUp(index);
          resolve();
        } else if (m.t === 'log') this.onLog(m);
        else this.owner.message(m);
      });
      w.on('error', (err) => {
        this.log.critical('core', `worker ${index} failed: ${err.stack ?? err.message}`);
      });
      w.on('exit', (code) => {
        ws.alive = false;
        ws.worker = null;
        this.onWorkerExit(ws);
        if (!up) {
          reject(new Error(`worker ${index} exited during start-up (code ${code})`));
          return;
        }
        if (ws.stopping || this.shuttingDown()) return;
        ws.restarts++;
        // Back off from a crash loop: 1 s, 2 s, 4 s ... 30 s; a worker that ran for a minute
        // starts from 1 s again. Health answers 503 until the new worker is up.
        const streak = monoMs() - ws.startedMs > 60_000 ? 1 : ws.restarts;
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(streak - 1, 5));
        this.log.critical('core', `worker ${index} exited (code ${code}); restarting in ${delay} ms`);
        setTimeout(() => {
          if (!this.shuttingDown()) this.spawnWorker(index).catch((e: Error) => this.log.critical('core', `worker ${index} restart failed: ${e.message}`));
        }, delay).unref();
      });
    });
  }

  /** A worker has exited (crashed, terminated or stopped): nothing of it runs any more, so its
   * counter block has no writer and its descriptors no user. Settle what it lost, give its share
   * of traffic to the live workers, and acknowledge what it can no longer acknowledge. */
  private onWorkerExit(ws: WorkerSlot): void {
    // Handed off: the new process reads on from this socket and these queues (they stay attached).
    if (this.handingOff) return;
    const index = ws.index;
    // Its UDP socket: what waits there is lost with it (counted); closing the socket makes the
    // kernel spread its share of GWLB's flows over the other workers' sockets at once.
    let lost = this.counters.settleDeadWorker(index, Drop.WORKER_DIED);
    const queued = this.drainUdp(ws.udpFd);
    this.counters.addDeadWorkerDrops(index, Drop.WORKER_DIED, queued);
    lost += queued;
    this.closeWorkerFds(ws);
    // Its TUN queues (the owner's): read and counted, then detached; and the removals it owed.
    lost += this.owner.workerExited(index, (fd, slot) => this.drainTun(index, fd, slot));
    if (lost > 0 && !this.shuttingDown()) this.log.important('core', `worker ${index}: ${lost} packet(s) lost with it (counted as worker_died)`);
  }

  /** Read and discard the datagrams queued on a dead worker's UDP socket; returns the count. */
  private drainUdp(fd: number): number {
    if (fd < 0) return 0;
    const buf = (this.drainBuf ??= new Uint8Array(RX_SLOT * DRAIN_BATCH));
    const meta = new Int32Array(DRAIN_BATCH * 5);
    let total = 0;
    for (let round = 0; round < DRAIN_ROUNDS; round++) {
      const n = this.nat.udpRecv(fd, buf, RX_SLOT, DRAIN_BATCH, meta);
      if (n <= 0) break;
      total += n;
    }
    return total;
  }

  /** Read and discard what is queued on a dead worker's TUN queue, counted in its block as a worker
   * would have counted it: the kernel's IPv6 link-local chatter as link_local (it was never
   * traffic: counting it as lost made returned + counted exceed what GWLB sent, issue 18), the
   * rest as worker_died, a super-packet (--offload on) as the segments it holds. Returns the
   * worker_died count. Reads use 64 KiB slots with offloads, so that a super-packet is read
   * whole and its segments can be counted. */
  private drainTun(index: number, fd: number, slot: number): number {
    const vnet = this.opts.offload ? VNET_HDR_LEN : 0;
    const slotSize = vnet === 0 ? RX_SLOT : MAX_SUPER + VNET_HDR_LEN;
    const batch = vnet === 0 ? DRAIN_BATCH : 16;
    const buf = vnet === 0 ? (this.drainBuf ??= new Uint8Array(RX_SLOT * DRAIN_BATCH)) : (this.drainBigBuf ??= new Uint8Array(slotSize * batch));
    const lens = new Int32Array(batch);
    const key = new Uint32Array(KEY_WORDS);
    const tally = [0, 0];
    for (let round = 0; round < DRAIN_ROUNDS; round++) {
      const n = this.nat.tunRead(fd, buf, slotSize, 0, 0, batch, lens);
      if (n <= 0) break;
      tallyDrained(buf, slotSize, lens, n, vnet, key, tally);
    }
    this.counters.addDeadWorkerDrops(index, Drop.LINK_LOCAL, tally[1], slot);
    this.counters.addDeadWorkerDrops(index, Drop.WORKER_DIED, tally[0], slot);
    return tally[0];
  }

  private closeWorkerFds(ws: WorkerSlot): void {
    for (const fd of [ws.epFd, ws.udpFd, ws.rawFd]) if (fd >= 0) this.nat.close(fd);
    ws.epFd = ws.udpFd = ws.rawFd = -1;
  }

  /** Post a message to worker `index` if it is alive (a dead one gets everything when it is up). */
  post(index: number, m: ToWorker): void {
    const ws = this.workers[index];
    if (ws === undefined || ws.port === null || !ws.alive) return;
    ws.port.postMessage(m);
    Atomics.add(this.ctrl, index * CTRL_CELLS + CTRL_MSG_SEQ, 1);
  }

  alive(index: number): boolean {
    return this.workers[index]?.alive === true;
  }

  /** Indexes of the live workers. */
  aliveIndexes(): number[] {
    const out: number[] = [];
    for (const ws of this.workers) if (ws.alive) out.push(ws.index);
    return out;
  }

  /** Terminate a wedged worker; its exit then settles it (and restarts it). */
  terminate(index: number): void {
    void this.workers[index]?.worker?.terminate();
  }

  private onLog(m: Extract<FromWorker, { t: 'log' }>): void {
    // -x asks for the dumps whatever the level; otherwise the section's level decides.
    const section = m.section as Section;
    if (this.opts.hexDump && !this.log.enabled(section, m.level)) this.log.log(section, LEVEL.important, m.msg);
    else this.log.log(section, m.level, m.msg);
  }

  /** Every worker alive, its UDP socket bound and its loop turning (a loop iteration lasts at
   * most about 100 ms; 5 s without one means it is wedged). */
  healthy(): boolean {
    const now = monoMs();
    for (let i = 0; i < this.opts.workers; i++) {
      const ws = this.workers[i];
      if (ws === undefined || !ws.alive || this.counters.of(i, C.UDP_BOUND) !== 1) return false;
      if (now - this.counters.of(i, C.HEARTBEAT_MS) > 5000) return false;
    }
    return true;
  }

  workerStatus(): WorkerStatus[] {
    const now = monoMs();
    return this.workers.map((ws) => ({
      index: ws.index,
      alive: ws.alive,
      restarts: ws.restarts,
      heartbeatAgeMs: Math.max(0, now - this.counters.of(ws.index, C.HEARTBEAT_MS)),
      udpFd: ws.udpFd,
    }));
  }

  /** The UDP socket of every worker (for the hand-over), by worker index. */
  udpFds(): number[] {
    return this.workers.map((ws) => ws.udpFd);
  }

  /** Hand-over: stop every worker as stopAll() does, but leave what they read as it is: nothing is
   * drained, detached or closed, since the new process reads on from the same descriptors.
   * Resolves when none runs any more. */
  async handOff(): Promise<void> {
    this.handingOff = true;
    await this.stopWorkers();
  }

  /** The hand-over failed after handOff(): start every worker again on the same sockets. */
  async resume(): Promise<void> {
    this.handingOff = false;
    for (const ws of this.workers) ws.stopping = false;
    await Promise.all(this.workers.map((ws) => this.spawnWorker(ws.index)));
  }

  /** Ask every worker to leave its loop, wait up to a second, terminate the rest. Resolves when
   * none runs any more (so none uses a TUN queue). */
  private async stopWorkers(): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const ws of this.workers) {
      ws.stopping = true;
      Atomics.store(this.ctrl, ws.index * CTRL_CELLS + CTRL_STOP, 1);
      const w = ws.worker;
      if (w !== null) exits.push(new Promise((r) => w.once('exit', () => r())));
    }
    await Promise.race([Promise.all(exits), sleep(1000)]);
    for (const ws of this.workers) if (ws.worker !== null) await ws.worker.terminate();
  }

  /** Stop every worker (stopWorkers) and close the send device's queues. */
  async stopAll(): Promise<void> {
    this.handingOff = false; // a shutdown after a hand-over gone back (fallback): settle as usual
    await this.stopWorkers();
    if (this.egressTimer !== null) clearInterval(this.egressTimer);
    this.egressTimer = null;
    if (this.txTap !== null) for (const fd of this.txTap.fds) this.nat.close(fd);
    this.txTap = null;
    if (this.txUso !== null) for (const fd of this.txUso.fds) this.nat.close(fd);
    this.txUso = null;
  }
}

/** Fault injection for the tests, GWLBTUN_FAILPOINT:
 *   worker-crash:<index>:<packets>  that worker throws after receiving that many packets;
 *   worker-wedge:<index>:<packets>  that worker stops turning its loop (spins) instead;
 *   slow-start:<ms>                 every worker waits that long before it reports 'up'.
 * Crash and wedge apply to a worker's first start only. */
function failpointFromEnv(index: number, firstStart: boolean): Pick<WorkerConfig, 'failAfter' | 'failKind' | 'startDelayMs'> {
  const fp = process.env.GWLBTUN_FAILPOINT ?? '';
  const none = { failAfter: -1, failKind: 'crash' as const, startDelayMs: 0 };
  const slow = /^slow-start:(\d+)$/.exec(fp);
  if (slow !== null) return { ...none, startDelayMs: Number(slow[1]) };
  const m = /^worker-(crash|wedge):(\d+):(\d+)$/.exec(fp);
  if (m === null || Number(m[2]) !== index || !firstStart) return none;
  return { failAfter: Number(m[3]), failKind: m[1] as 'crash' | 'wedge', startDelayMs: 0 };
}

function withCode(e: unknown, prefix: string): Error {
  const err = e as NodeJS.ErrnoException;
  return Object.assign(new Error(`${prefix}: ${err.message}`), { code: err.code });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
