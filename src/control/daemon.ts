// The control plane: runs on the main thread, never touches packets.
//
// - starts the data-plane workers and restarts one that dies;
// - owns the endpoint lifecycle: on a worker's 'new' for an unknown ENI ID it creates the TUN
//   devices (one queue per worker per device), runs the CREATE hook, then hands every worker its
//   queues ('add'); on idle timeout, a deleted device, or shutdown it takes the endpoint away from
//   every worker ('remove', acknowledged), runs the DESTROY hook, and closes the queues (the
//   kernel deletes a non-persistent TUN device with its last queue);
// - sweeps idle flows from the shared flow table a slice at a time (every 100 ms);
// - answers health checks and /metrics from the shared counters.

import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { native } from '../io/native';
import { endpointNames } from '../wire/eni';
import { createFlowTableBuffer, FlowTable } from '../flow/table';
import { monoMs, nowTicks, TICKS_PER_SECOND } from '../flow/clock';
import { CounterReader, createCountersBuffer, C, EP } from '../dataplane/counters';
import { Drop } from '../wire/reasons';
import { CTRL_CELLS, CTRL_MSG_SEQ, CTRL_STOP, type FromWorker, type ToWorker, type WorkerConfig } from '../dataplane/messages';
import { runHook, SerialQueues, type HookResult } from './hooks';
import { InterfaceSysctls, newSysctlMarks, WATCH_MS, type SysctlMarks } from './sysctl';
import { LEVEL, type Logger, type Section } from '../ops/log';

export const TUN_MTU = 8500;
/** Packets each TUN queue holds for us between two reads (the kernel's default is 500). Measured
 * (bench/, two workers near saturation): gwo- queues of 500 overflowed while a worker was busy
 * receiving; a longer ring absorbs that. It costs memory only while packets wait. */
export const TUN_TXQUEUELEN = 2048;
/** How long an endpoint whose interface was deleted right after creation is refused. */
const REFUSE_MS = 10_000;
/** A worker's loop turns at least every 100 ms; one that has not acknowledged a removal within
 * this long is wedged, and is terminated (then restarted) rather than trusted to have let go of
 * the endpoint's descriptors. */
const ACK_TIMEOUT_MS = 5000;

export interface DaemonOptions {
  createHook: string | null;
  destroyHook: string | null;
  /** -t: destroy an endpoint idle this long (seconds); 0 = never. */
  endpointTimeoutS: number;
  tcpIdleS: number;
  otherIdleS: number;
  hookTimeoutS: number;
  workers: number;
  /** CPU list per worker (null = no affinity). */
  cpus: (number[] | null)[];
  udpPort: number;
  noReturn: boolean;
  maxEndpoints: number;
  maxFlows: number;
  allow: number[];
  holdPackets: number;
  holdMs: number;
  rcvbuf: number;
  sndbuf: number;
  hexDump: boolean;
  /** Write and keep the gwi-/gwo- sysctls (src/control/sysctl.ts); false with --no-sysctl. */
  manageSysctls: boolean;
}

export type EndpointState = 'creating' | 'ready' | 'destroying';

export interface Endpoint {
  eni: bigint;
  hi: number;
  lo: number;
  hex: string;
  gwi: string;
  gwo: string;
  slot: number;
  epId: number;
  state: EndpointState;
  gwiFds: number[];
  gwoFds: number[];
  /** Per worker: its queues of this endpoint are detached (the worker is dead or not yet up),
   * so the kernel queues nothing on them; attached again right before the worker's 'add'. */
  detached: boolean[];
  /** DESTROY has run and the queues are closed: nothing is left to do for it. */
  destroyed: boolean;
  /** Monotonic ms (src/flow/clock.ts), like every time kept here. */
  createdMs: number;
  readyMs: number;
  /** A packet arrived while it was being destroyed: create it again afterwards. */
  recreate: boolean;
  sysctl: SysctlMarks;
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

export interface HookStats {
  runs: number;
  failures: number;
  timeouts: number;
  durationMsTotal: number;
}

export class Daemon {
  readonly startedMs = monoMs();
  readonly counterSab: SharedArrayBuffer;
  readonly counters: CounterReader;
  readonly flows: FlowTable | null;
  readonly endpoints = new Map<string, Endpoint>(); // by ENI hex
  readonly bySlot: (Endpoint | undefined)[];
  readonly hookStats: Record<'create' | 'destroy', HookStats> = {
    create: { runs: 0, failures: 0, timeouts: 0, durationMsTotal: 0 },
    destroy: { runs: 0, failures: 0, timeouts: 0, durationMsTotal: 0 },
  };
  flowExpiries = 0;
  endpointsCreated = 0;
  endpointsDestroyed = 0;
  shuttingDown = false;
  /** null with --no-sysctl. */
  readonly sysctls: InterfaceSysctls | null;

  private readonly flowSab: SharedArrayBuffer | null;
  private readonly ctrlSab: SharedArrayBuffer;
  private readonly ctrl: Int32Array;
  private readonly workers: WorkerSlot[] = [];
  private readonly slotGen: Uint16Array;
  private readonly freeSlots: number[] = [];
  private readonly serial = new SerialQueues();
  /** ENI IDs whose interfaces vanished right after creation: refused until the time given (monotonic ms). */
  private readonly refusedUntil = new Map<string, number>();
  /** Removals waiting for acknowledgements, keyed by endpoint id (slot and generation), so a
   * late acknowledgement for one endpoint never completes the wait of the next one in its slot. */
  private readonly removeWaits = new Map<number, { pending: Set<number>; done: () => void }>();
  private drainBuf: Uint8Array | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly nat = native();

  constructor(
    readonly opts: DaemonOptions,
    readonly log: Logger,
  ) {
    this.counterSab = createCountersBuffer(opts.workers, opts.maxEndpoints);
    this.counters = new CounterReader(this.counterSab, opts.workers, opts.maxEndpoints);
    this.flowSab = opts.noReturn ? null : createFlowTableBuffer(opts.maxFlows);
    this.flows = this.flowSab === null ? null : new FlowTable(this.flowSab);
    this.ctrlSab = new SharedArrayBuffer(opts.workers * CTRL_CELLS * 4);
    this.ctrl = new Int32Array(this.ctrlSab);
    this.bySlot = new Array<Endpoint | undefined>(opts.maxEndpoints).fill(undefined);
    this.slotGen = new Uint16Array(opts.maxEndpoints);
    for (let s = opts.maxEndpoints - 1; s >= 0; s--) this.freeSlots.push(s);
    this.sysctls = opts.manageSysctls ? new InterfaceSysctls(log, opts.noReturn) : null;
  }

  /** Start the workers; resolves once every worker has bound its UDP socket, rejects with the
   * first worker's setup error (port in use, missing capability). */
  async start(): Promise<void> {
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
    await Promise.all(Array.from({ length: this.opts.workers }, (_, i) => this.spawnWorker(i)));
    if (this.shuttingDown) return; // a signal arrived during start-up
    const sweepBudget = this.flows === null ? 0 : Math.max(1, Math.ceil(this.flows.buckets / 10));
    const live = (epId: number): boolean => {
      const e = this.bySlot[epId & 0xffff];
      return e !== undefined && e.epId === epId >>> 0 && e.state !== 'destroying';
    };
    if (this.flows !== null) {
      const flows = this.flows;
      // Expiry runs continuously: a tenth of the table every 100 ms, so every flow is examined
      // about once a second whatever the table size, in slices that never stall anything.
      this.timers.push(
        setInterval(() => {
          this.flowExpiries += flows.sweep(
            nowTicks(),
            this.opts.tcpIdleS * TICKS_PER_SECOND,
            this.opts.otherIdleS * TICKS_PER_SECOND,
            sweepBudget,
            live,
          );
        }, 100),
      );
    }
    if (this.opts.endpointTimeoutS > 0) this.timers.push(setInterval(() => this.checkIdleEndpoints(), 250));
    const sysctls = this.sysctls;
    if (sysctls !== null) this.timers.push(setInterval(() => sysctls.tick(this.bySlot, this.endpoints.size), WATCH_MS));
    for (const t of this.timers) t.unref();
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
    try {
      ws.udpFd = this.nat.udpOpen(this.opts.udpPort, this.opts.rcvbuf, true);
      ws.rawFd = this.nat.rawOpen(this.opts.sndbuf);
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
      cpus: this.opts.cpus[index] ?? null,
      holdPackets: this.opts.holdPackets,
      holdMs: this.opts.holdMs,
      allow: this.opts.allow,
      flowSab: this.flowSab,
      counterSab: this.counterSab,
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
          for (const e of this.endpoints.values()) if (e.state === 'ready') this.sendAdd(e, index);
          resolve();
        } else this.onWorkerMessage(m);
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
        if (ws.stopping || this.shuttingDown) return;
        ws.restarts++;
        // Back off from a crash loop: 1 s, 2 s, 4 s ... 30 s; a worker that ran for a minute
        // starts from 1 s again. Health answers 503 until the new worker is up.
        const streak = monoMs() - ws.startedMs > 60_000 ? 1 : ws.restarts;
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(streak - 1, 5));
        this.log.critical('core', `worker ${index} exited (code ${code}); restarting in ${delay} ms`);
        setTimeout(() => {
          if (!this.shuttingDown) this.spawnWorker(index).catch((e: Error) => this.log.critical('core', `worker ${index} restart failed: ${e.message}`));
        }, delay).unref();
      });
    });
  }

  /** A worker has exited (crashed, terminated or stopped): nothing of it runs any more, so its
   * counter block has no writer and its descriptors no user. Settle what it lost, give its share
   * of traffic to the live workers, and acknowledge what it can no longer acknowledge. */
  private onWorkerExit(ws: WorkerSlot): void {
    const index = ws.index;
    // Its UDP socket: what waits there is lost with it (counted); closing the socket makes the
    // kernel spread its share of GWLB's flows over the other workers' sockets at once.
    let lost = this.counters.settleDeadWorker(index, Drop.WORKER_DIED);
    const queued = this.drain(ws.udpFd, true);
    this.counters.addDeadWorkerDrops(index, Drop.WORKER_DIED, queued);
    lost += queued;
    this.closeWorkerFds(ws);
    // Its TUN queues: detached, so the kernel queues this worker's share of the returns on the
    // live workers' queues instead of on a queue nobody reads. What waits there is read (and
    // counted) first: detaching a queue makes the kernel discard what it holds.
    for (const e of this.endpoints.values()) {
      if (e.destroyed) continue;
      for (const fd of [e.gwiFds[index], e.gwoFds[index]]) {
        if (fd === undefined || fd < 0) continue;
        const n = this.drain(fd, false);
        this.counters.addDeadWorkerDrops(index, Drop.WORKER_DIED, n, e.slot);
        lost += n;
        if (!e.detached[index]) {
          try {
            this.nat.tunSetQueue(fd, false);
          } catch {
            // the device is gone: nothing is queued on it any more
          }
        }
      }
      e.detached[index] = true;
    }
    if (lost > 0 && !this.shuttingDown) this.log.important('core', `worker ${index}: ${lost} packet(s) lost with it (counted as worker_died)`);
    // Acknowledge any removal this worker can no longer acknowledge.
    for (const [id, wait] of this.removeWaits) {
      wait.pending.delete(index);
      if (wait.pending.size === 0) {
        this.removeWaits.delete(id);
        wait.done();
      }
    }
  }

  /** Read and discard what is queued on a UDP socket or TUN queue; returns the count (bounded). */
  private drain(fd: number, udp: boolean): number {
    if (fd < 0) return 0;
    const SLOT = 9216;
    const BATCH = 64;
    this.drainBuf ??= new Uint8Array(SLOT * BATCH);
    const meta = new Int32Array(BATCH * 5);
    let total = 0;
    for (let round = 0; round < 1024; round++) {
      const n = udp ? this.nat.udpRecv(fd, this.drainBuf, SLOT, BATCH, meta) : this.nat.tunRead(fd, this.drainBuf, SLOT, 0, 0, BATCH, meta);
      if (n <= 0) break;
      total += n;
    }
    return total;
  }

  private closeWorkerFds(ws: WorkerSlot): void {
    for (const fd of [ws.epFd, ws.udpFd, ws.rawFd]) if (fd >= 0) this.nat.close(fd);
    ws.epFd = ws.udpFd = ws.rawFd = -1;
  }

  private post(index: number, m: ToWorker): void {
    const ws = this.workers[index];
    if (ws === undefined || ws.port === null || !ws.alive) return;
    ws.port.postMessage(m);
    Atomics.add(this.ctrl, index * CTRL_CELLS + CTRL_MSG_SEQ, 1);
  }

  private onWorkerMessage(m: FromWorker): void {
    if (m.t === 'new') this.onNewEni(m.index, m.hi, m.lo);
    else if (m.t === 'removed') {
      const wait = this.removeWaits.get(m.epId);
      if (wait !== undefined) {
        wait.pending.delete(m.index);
        if (wait.pending.size === 0) {
          this.removeWaits.delete(m.epId);
          wait.done();
        }
      }
    } else if (m.t === 'gone') {
      const e = this.bySlot[m.slot];
      if (e !== undefined && e.state === 'ready') {
        this.log.important('tunnel', `interface of endpoint ${e.hex} went away (errno ${m.errno}); tearing it down`);
        void this.destroy(e, 'device deleted');
      }
    } else if (m.t === 'log') {
      // -x asks for the dumps whatever the level; otherwise the section's level decides.
      const section = m.section as Section;
      if (this.opts.hexDump && !this.log.enabled(section, m.level)) this.log.log(section, LEVEL.important, m.msg);
      else this.log.log(section, m.level, m.msg);
    }
  }

  private onNewEni(worker: number, hi: number, lo: number): void {
    const eni = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    const names = endpointNames(eni);
    const existing = this.endpoints.get(names.hex);
    if (existing !== undefined) {
      if (existing.state === 'destroying') existing.recreate = true;
      else if (existing.state === 'ready') this.sendAdd(existing, worker); // worker lost it (restart race)
      return; // 'creating': every worker gets 'add' when it is done
    }
    if (this.shuttingDown) return;
    const refused = this.refusedUntil.get(names.hex);
    if (refused !== undefined) {
      if (monoMs() < refused) {
        this.post(worker, { t: 'reject', hi, lo, failed: true });
        return;
      }
      this.refusedUntil.delete(names.hex);
    }
    const slot = this.freeSlots.pop();
    if (slot === undefined) {
      this.log.limited('endpoint-limit', 'core', LEVEL.important, `endpoint limit (${this.opts.maxEndpoints}) reached; dropping traffic of ENI ${names.hex}`);
      this.post(worker, { t: 'reject', hi, lo, failed: false });
      return;
    }
    const gen = (this.slotGen[slot] = (this.slotGen[slot] + 1) & 0xffff);
    const e: Endpoint = {
      eni,
      hi: hi >>> 0,
      lo: lo >>> 0,
      hex: names.hex,
      gwi: names.gwi,
      gwo: names.gwo,
      slot,
      epId: (slot | (gen << 16)) >>> 0,
      state: 'creating',
      gwiFds: [],
      gwoFds: [],
      detached: [],
      destroyed: false,
      createdMs: monoMs(),
      readyMs: 0,
      recreate: false,
      sysctl: newSysctlMarks(),
    };
    this.endpoints.set(e.hex, e);
    this.bySlot[slot] = e;
    void this.serial.run(e.hex, () => this.create(e));
  }

  private async create(e: Endpoint): Promise<void> {
    try {
      for (let i = 0; i < this.opts.workers; i++) {
        e.gwiFds.push(this.nat.tunOpen(e.gwi));
        if (!this.opts.noReturn) e.gwoFds.push(this.nat.tunOpen(e.gwo));
      }
      this.sysctls?.apply(e); // before the links go up and before the hook
      this.nat.linkSetup(e.gwi, TUN_MTU, TUN_TXQUEUELEN);
      if (!this.opts.noReturn) this.nat.linkSetup(e.gwo, TUN_MTU, TUN_TXQUEUELEN);
      // A worker that is down (restarting) must not have the kernel queue returns on its queues.
      for (let i = 0; i < this.opts.workers; i++) {
        e.detached[i] = false;
        if (this.workers[i]?.alive !== true) this.setQueues(e, i, false);
      }
    } catch (err) {
      this.log.critical('tunnel', `cannot create interfaces for endpoint ${e.hex}: ${(err as Error).message}`);
      this.closeFds(e);
      this.releaseSlot(e);
      for (let i = 0; i < this.opts.workers; i++) this.post(i, { t: 'reject', hi: e.hi, lo: e.lo, failed: true });
      return;
    }
    this.log.important('tunnel', `endpoint ${e.hex}: created ${e.gwi}${this.opts.noReturn ? '' : ' and ' + e.gwo}`);
    if (this.opts.createHook !== null) await this.hook('create', e);
    if (this.shuttingDown) return; // shutdown() destroys it
    this.sysctls?.check(e); // changed during the hook (udev): fix it before held packets go
    e.state = 'ready';
    e.readyMs = monoMs();
    this.endpointsCreated++;
    for (let i = 0; i < this.opts.workers; i++) this.sendAdd(e, i);
  }

  private sendAdd(e: Endpoint, i: number): void {
    if (this.workers[i]?.alive !== true) return; // it gets every endpoint when it is up
    if (e.detached[i]) {
      try {
        this.setQueues(e, i, true);
      } catch (err) {
        this.log.important('tunnel', `endpoint ${e.hex}: cannot attach worker ${i}'s queues again: ${(err as Error).message}`);
        return;
      }
    }
    this.post(i, { t: 'add', hi: e.hi, lo: e.lo, slot: e.slot, epId: e.epId, gwi: e.gwiFds[i], gwo: e.gwoFds[i] ?? -1 });
  }

  /** Attach or detach worker i's queues of an endpoint (TUNSETQUEUE). */
  private setQueues(e: Endpoint, i: number, attach: boolean): void {
    for (const fd of [e.gwiFds[i], e.gwoFds[i]]) if (fd !== undefined && fd >= 0) this.nat.tunSetQueue(fd, attach);
    e.detached[i] = !attach;
  }

  private async hook(kind: 'create' | 'destroy', e: Endpoint): Promise<HookResult | null> {
    const file = kind === 'create' ? this.opts.createHook : this.opts.destroyHook;
    if (file === null) return null;
    const args = [kind === 'create' ? 'CREATE' : 'DESTROY', e.gwi, this.opts.noReturn ? 'none' : e.gwo, e.hex];
    const r = await runHook(file, args, this.opts.hookTimeoutS * 1000);
    const st = this.hookStats[kind];
    st.runs++;
    st.durationMsTotal += r.durationMs;
    const ok = r.code === 0 && !r.timedOut && r.error === undefined;
    if (!ok) st.failures++;
    if (r.timedOut) st.timeouts++;
    const fields = { hook: file, args: args.join(' '), exit: r.code, signal: r.signal, ms: r.durationMs };
    if (r.error !== undefined) this.log.important('core', `${kind} hook could not run: ${r.error}`, fields);
    else if (r.timedOut) this.log.important('core', `${kind} hook timed out after ${this.opts.hookTimeoutS} s and was killed`, fields);
    else if (r.code !== 0) this.log.important('core', `${kind} hook failed`, fields);
    else this.log.info('core', `${kind} hook done`, fields);
    // A failing hook's output is what the operator needs to see: log it at the failure's level.
    if (r.output.length > 0) this.log.log('core', ok ? LEVEL.info : LEVEL.important, `${kind} hook output: ${r.output.trimEnd()}`);
    return r;
  }

  private checkIdleEndpoints(): void {
    const limitMs = this.opts.endpointTimeoutS * 1000;
    const now = monoMs();
    for (const e of this.endpoints.values()) {
      if (e.state !== 'ready') continue;
      const last = Math.max(e.readyMs, this.counters.epMax(e.slot, EP.LAST_RX_MS), this.counters.epMax(e.slot, EP.LAST_TX_MS));
      if (now - last >= limitMs) {
        this.log.important('tunnel', `endpoint ${e.hex}: no traffic for ${this.opts.endpointTimeoutS} s; destroying`);
        void this.destroy(e, 'idle');
      }
    }
  }

  /** Take the endpoint away from every worker, run DESTROY, close the queues. */
  destroy(e: Endpoint, why: string): Promise<void> {
    if (e.state === 'destroying') return Promise.resolve();
    e.state = 'destroying';
    return this.serial.run(e.hex, async () => {
      await this.removeFromWorkers(e);
      if (this.opts.destroyHook !== null) await this.hook('destroy', e);
      this.closeFds(e);
      e.destroyed = true;
      this.endpointsDestroyed++;
      this.log.important('tunnel', `endpoint ${e.hex}: destroyed (${why})`);
      this.counters.resetEndpoint(e.slot);
      this.releaseSlot(e);
      if (why === 'device deleted' && monoMs() - e.readyMs < 5000 && !this.shuttingDown) {
        // Deleted within seconds of its creation (a hook that deletes its own interface?):
        // refuse its traffic for a while (counted as endpoint_failed) instead of re-creating it
        // in a tight loop; the workers forget the refusal after 10 s.
        this.log.important('tunnel', `endpoint ${e.hex}: interface deleted ${Math.round(monoMs() - e.readyMs)} ms after creation; refusing its traffic for 10 s`);
        if (this.refusedUntil.size >= this.opts.maxEndpoints) this.refusedUntil.clear(); // bounded
        this.refusedUntil.set(e.hex, monoMs() + REFUSE_MS);
        for (let i = 0; i < this.opts.workers; i++) this.post(i, { t: 'reject', hi: e.hi, lo: e.lo, failed: true });
        return;
      }
      if (e.recreate && !this.shuttingDown) {
        // Packets arrived meanwhile and are held by a worker: create it again now.
        this.onNewEni(0, e.hi, e.lo);
      }
    });
  }

  /** Take the endpoint away from every live worker and wait until each has acknowledged it or
   * exited: only then may its descriptors be closed (a number closed while a worker still
   * uses it could soon name a new TUN queue or a hook's pipe). A worker that does not answer
   * within ACK_TIMEOUT_MS is wedged: it is terminated, which ends the wait (and restarts it). */
  private removeFromWorkers(e: Endpoint): Promise<void> {
    const pending = new Set<number>();
    for (const ws of this.workers) if (ws.alive) pending.add(ws.index);
    if (pending.size === 0) return Promise.resolve();
    const id = e.epId;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        const wait = this.removeWaits.get(id);
        if (wait === undefined) return;
        for (const i of wait.pending) {
          this.log.critical('core', `worker ${i} did not let go of endpoint ${e.hex} within ${ACK_TIMEOUT_MS} ms; terminating it`);
          void this.workers[i].worker?.terminate();
        }
      }, ACK_TIMEOUT_MS);
      timer.unref();
      this.removeWaits.set(id, {
        pending,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      for (const i of pending) this.post(i, { t: 'remove', slot: e.slot, epId: id });
    });
  }

  private closeFds(e: Endpoint): void {
    for (const fd of [...e.gwiFds, ...e.gwoFds]) this.nat.close(fd);
    e.gwiFds = [];
    e.gwoFds = [];
  }

  private releaseSlot(e: Endpoint): void {
    if (this.endpoints.get(e.hex) === e) this.endpoints.delete(e.hex);
    if (this.bySlot[e.slot] === e) {
      this.bySlot[e.slot] = undefined;
      this.freeSlots.push(e.slot);
    }
  }

  /** Healthy: every worker alive, its UDP socket bound and its loop turning (a loop iteration
   * lasts at most about 100 ms; 5 s without one means it is wedged), and not shutting down. */
  healthy(): boolean {
    if (this.shuttingDown) return false;
    const now = monoMs();
    for (let i = 0; i < this.opts.workers; i++) {
      const ws = this.workers[i];
      if (ws === undefined || !ws.alive || this.counters.of(i, C.UDP_BOUND) !== 1) return false;
      if (now - this.counters.of(i, C.HEARTBEAT_MS) > 5000) return false;
    }
    return true;
  }

  workerStatus(): { index: number; alive: boolean; restarts: number; heartbeatAgeMs: number }[] {
    const now = monoMs();
    return this.workers.map((ws) => ({
      index: ws.index,
      alive: ws.alive,
      restarts: ws.restarts,
      heartbeatAgeMs: Math.max(0, now - this.counters.of(ws.index, C.HEARTBEAT_MS)),
    }));
  }

  /** Stop receiving, destroy every endpoint (DESTROY hooks), stop the workers. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    // Stop the workers first: nothing is received any more, and no worker uses a TUN queue
    // after it has exited, so the endpoints can then be taken down without 'remove' round trips.
    const exits: Promise<void>[] = [];
    for (const ws of this.workers) {
      ws.stopping = true;
      Atomics.store(this.ctrl, ws.index * CTRL_CELLS + CTRL_STOP, 1);
      const w = ws.worker;
      if (w !== null) exits.push(new Promise((r) => w.once('exit', () => r())));
    }
    await Promise.race([Promise.all(exits), sleep(1000)]);
    for (const ws of this.workers) if (ws.worker !== null) await ws.worker.terminate();
    // Every endpoint, in its own serial queue: one being created finishes its CREATE hook first,
    // one already being destroyed (idle, device deleted) finishes that and is skipped here, so
    // DESTROY runs exactly once per endpoint.
    const all = [...this.endpoints.values()];
    await Promise.all(
      all.map((e) =>
        this.serial.run(e.hex, async () => {
          if (e.destroyed) return;
          e.state = 'destroying';
          if (this.opts.destroyHook !== null) await this.hook('destroy', e);
          this.closeFds(e);
          e.destroyed = true;
          this.endpointsDestroyed++;
          this.releaseSlot(e);
        }),
      ),
    );
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
