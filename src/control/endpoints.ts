// The endpoint lifecycle: one GWLB endpoint (ENI ID) = one gwi-/gwo- TUN pair.
//
// Owns: the endpoint table (by ENI hex and by slot), slots and their generations, the per-ENI
// serial queues in which CREATE, DESTROY and teardown run, the removal acknowledgements, the
// refusal window of an endpoint whose interface vanished, the -t idle check, the sysctl keeper's
// calls, and every endpoint's TUN queue descriptors (attached or detached per worker).
// Promises: on a worker's 'new' for an unknown ENI ID it creates the devices (one queue per
// worker per device), runs the CREATE hook, then hands every live worker its queues ('add'); on
// idle timeout, a deleted device, or shutdown it takes the endpoint away from every worker
// ('remove', acknowledged by endpoint id, or the worker's exit), runs DESTROY exactly once, and
// closes the queues (the kernel deletes a non-persistent TUN device with its last queue). An
// endpoint id carries its slot's generation, so nothing of a destroyed endpoint (a late
// acknowledgement, a flow) is ever taken for the next one in its slot. Workers are reached
// only through the WorkerControl given (src/control/workers.ts).
//
// Listed endpoints (--endpoints FILE, src/control/endpoints-file.ts): createListed() creates them
// at start-up, before the daemon reports healthy; the -t idle check never takes them down; their
// own hooks replace -c/-r; reload() (SIGHUP) creates the added ones and destroys the removed ones,
// and leaves the others running (a new name or hook applies in place, no hook runs again). A
// listed endpoint that is destroyed anyway (its device deleted) is created again, as listed, by its
// next packet. With --endpoints-only a packet of an unlisted ENI ID creates nothing: the worker
// is refused (`endpoint_unlisted`) and asks again after its refusal expires.
// An endpoint with a network namespace (its `netns=`, or --netns-per-endpoint) has its devices
// moved there after they are set up and before its CREATE hook, and its hooks run there
// (src/control/netns.ts); the namespace goes after DESTROY when gwlbtun created it.
//
// Hand-over (SIGUSR2, src/control/handover.ts): handOverState() describes the ready endpoints
// (ENI, slot and generation, queues, namespace) for the new process, whose adopt() takes them
// over as they are: same slots and endpoint ids (the flow table's keys carry them), queues
// attached, state 'ready', no CREATE hook; the old process then exits without DESTROY. A hand-over
// waits for a quiet moment: handOverBlocker() names an endpoint being created or destroyed.

import { applyOffloads, offloadNames } from '../io/offload';
import { native } from '../io/native';
import { endpointNames, eniFromBase60 } from '../wire/eni';
import * as fs from 'node:fs';
import { monoMs } from '../base/clock';
import { EP, type CounterReader } from '../dataplane/counters';
import type { FromWorker, ToWorker } from '../dataplane/messages';
import { runHook, SerialQueues, type HookResult } from './hooks';
import { newSysctlMarks, WATCH_MS, type InterfaceSysctls, type SysctlMarks } from './sysctl';
import { LEVEL, type Logger } from '../base/log';
import type { DaemonOptions } from './options';
import type { EndpointEntry } from './endpoints-file';
import { ensureNetns, inNetns, moveIntoNetns, removeNetns } from './netns';

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
  /** Monotonic ms (src/base/clock.ts), like every time kept here. */
  createdMs: number;
  readyMs: number;
  /** A packet arrived while it was being destroyed: create it again afterwards. */
  recreate: boolean;
  sysctl: SysctlMarks;
  /** The hook running for it now, and the last one that ran (for the status page). */
  hookRunning: 'create' | 'destroy' | null;
  lastHook: HookRecord | null;
  /** Its line of the endpoints file as last read (name, own hooks), or null: not listed when it
   * was created. Kept after a reload removed it, until it is destroyed. */
  entry: EndpointEntry | null;
  /** Its network namespace (null: gwlbtun's own), and whether gwlbtun created it (then it is
   * removed after DESTROY). */
  netns: string | null;
  netnsCreated: boolean;
}

/** An endpoint's name from the endpoints file, or null. */
export function endpointName(e: Endpoint): string | null {
  return e.entry?.name ?? null; // (entry absent: an endpoint made by a test's stub)
}

/** How logs name an endpoint: its ENI hex, and its name when it has one. */
export function endpointLabel(e: Endpoint): string {
  const name = endpointName(e);
  return name === null ? e.hex : `${e.hex} (${name})`;
}

/** One hook run, as the status page shows it (output cut to HOOK_OUTPUT_MAX characters). */
export interface HookRecord {
  kind: 'create' | 'destroy';
  result: 'ok' | 'failed' | 'timed out' | 'could not run';
  exit: number | null;
  /** After a timeout, the last signal its process group got (HookResult.killed). */
  killed: 'TERM' | 'KILL' | null;
  /** Processes of its group were still running after it exited (HookResult.outlived): killed
   * after a timeout, left alone otherwise. */
  outlived: boolean;
  ms: number;
  /** Monotonic ms of its end. */
  atMs: number;
  output: string;
}
export const HOOK_OUTPUT_MAX = 4096;

export interface HookStats {
  runs: number;
  failures: number;
  timeouts: number;
  durationMsTotal: number;
}

/** A ready endpoint as a hand-over passes it to the new process (src/control/handover.ts): the
 * descriptors are numbers in the process that holds them (the hand-over maps them). */
export interface HandedEndpoint {
  hex: string;
  slot: number;
  epId: number;
  /** By worker; gwoFds is empty with --no-return. */
  gwiFds: number[];
  gwoFds: number[];
  readyMs: number;
  /** Its last packet either way (monotonic ms), or readyMs: the new process's counters start at
   * zero, so the -t idle check starts from this. */
  lastMs: number;
  netns: string | null;
  netnsCreated: boolean;
}

/** tun_flags bits (linux/if_tun.h): a gwlbtun device is IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE;
 * IFF_PERSIST once persistent. */
const IFF_TUN = 0x0001;
const IFF_TAP = 0x0002;
const IFF_MULTI_QUEUE = 0x0100;
const IFF_PERSIST = 0x0800;
const IFF_NO_PI = 0x1000;

/** Persistent gwi-/gwo- TUN devices of this namespace that no process holds (carrier 0), by name:
 * '' when one is as gwlbtun makes them, else what is wrong with it. Start-up only. */
function orphanDevices(sysNet: string): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = fs.readdirSync(sysNet);
  } catch {
    return out;
  }
  const read = (n: string, f: string): string | null => {
    try {
      return fs.readFileSync(`${sysNet}/${n}/${f}`, 'latin1').trim();
    } catch {
      return null; // not a TUN device (no tun_flags), or down (carrier: EINVAL)
    }
  };
  for (const n of names) {
    if (!/^gw[io]-/.test(n)) continue;
    const f = read(n, 'tun_flags');
    if (f === null || !/^0x[0-9a-f]+$/.test(f)) continue;
    const flags = parseInt(f, 16);
    if ((flags & IFF_PERSIST) === 0 || read(n, 'carrier') !== '0') continue; // a process holds it
    const want = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE;
    out.set(n, (flags & (want | IFF_TAP)) === want ? '' : `${n} has flags ${f}, not a multi-queue TUN device without packet information`);
  }
  return out;
}

/** What the lifecycle needs of the workers (src/control/workers.ts). */
export interface WorkerControl {
  post(index: number, m: ToWorker): void;
  alive(index: number): boolean;
  aliveIndexes(): number[];
  terminate(index: number): void;
}

export class EndpointLifecycle {
  readonly endpoints = new Map<string, Endpoint>(); // by ENI hex
  readonly bySlot: (Endpoint | undefined)[];
  readonly hookStats: Record<'create' | 'destroy', HookStats> = {
    create: { runs: 0, failures: 0, timeouts: 0, durationMsTotal: 0 },
    destroy: { runs: 0, failures: 0, timeouts: 0, durationMsTotal: 0 },
  };
  endpointsCreated = 0;
  endpointsDestroyed = 0;

  private readonly slotGen: Uint16Array;
  private readonly freeSlots: number[] = [];
  private readonly serial = new SerialQueues();
  /** ENI IDs whose interfaces vanished right after creation: refused until the time given (monotonic ms). */
  private readonly refusedUntil = new Map<string, number>();
  /** Removals waiting for acknowledgements, keyed by endpoint id (slot and generation), so a
   * late acknowledgement for one endpoint never completes the wait of the next one in its slot. */
  private readonly removeWaits = new Map<number, { pending: Set<number>; done: () => void }>();
  private timers: NodeJS.Timeout[] = [];
  private readonly nat = native();
  /** The endpoints file's entries by ENI hex: these are created at start and on reload. */
  private listed = new Map<string, EndpointEntry>();

  constructor(
    private readonly opts: DaemonOptions,
    private readonly log: Logger,
    private readonly counters: CounterReader,
    /** null with --no-sysctl. */
    private readonly sysctls: InterfaceSysctls | null,
    private readonly workers: WorkerControl,
    /** The daemon is shutting down: no new endpoint, no re-creation, no refusal. */
    private readonly shuttingDown: () => boolean,
  ) {
    this.bySlot = new Array<Endpoint | undefined>(opts.maxEndpoints).fill(undefined);
    this.slotGen = new Uint16Array(opts.maxEndpoints);
    for (let s = opts.maxEndpoints - 1; s >= 0; s--) this.freeSlots.push(s);
  }

  /** The endpoint id is that of a live endpoint (the flow sweeper drops flows of others). */
  live(epId: number): boolean {
    const e = this.bySlot[epId & 0xffff];
    return e !== undefined && e.epId === epId >>> 0 && e.state !== 'destroying';
  }

  /** The idle check (-t) and the sysctl keeper; unref'd. */
  startTimers(): void {
    if (this.opts.endpointTimeoutS > 0) this.timers.push(setInterval(() => this.checkIdleEndpoints(), 250));
    const sysctls = this.sysctls;
    if (sysctls !== null) this.timers.push(setInterval(() => sysctls.tick(this.bySlot, this.endpoints.size), WATCH_MS));
    for (const t of this.timers) t.unref();
  }

  stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** A worker is up: it gets every ready endpoint (its queues attached again first). */
  workerUp(index: number): void {
    for (const e of this.endpoints.values()) if (e.state === 'ready') this.sendAdd(e, index);
  }

  /** A worker has exited: its TUN queues are detached, so the kernel queues this worker's share
   * of the returns on the live workers' queues instead of on a queue nobody reads. What waits
   * there is read and counted first (by `drain`, against the endpoint's counter slot): detaching
   * a queue makes the kernel discard what it holds. Then every removal it owed is acknowledged on
   * its behalf. Returns the packets lost (what `drain` returned). */
  workerExited(index: number, drain: (fd: number, slot: number) => number): number {
    let lost = 0;
    for (const e of this.endpoints.values()) {
      if (e.destroyed) continue;
      for (const fd of [e.gwiFds[index], e.gwoFds[index]]) {
        if (fd === undefined || fd < 0) continue;
        lost += drain(fd, e.slot);
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
    // Acknowledge any removal this worker can no longer acknowledge.
    for (const [id, wait] of this.removeWaits) {
      wait.pending.delete(index);
      if (wait.pending.size === 0) {
        this.removeWaits.delete(id);
        wait.done();
      }
    }
    return lost;
  }

  /** A worker's 'new', 'removed' or 'gone'. */
  message(m: FromWorker): void {
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
        this.log.important('tunnel', `interface of endpoint ${endpointLabel(e)} went away (errno ${m.errno}); tearing it down`);
        void this.destroy(e, 'device deleted');
      }
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
    if (this.shuttingDown()) return;
    if (this.opts.endpointsOnly && !this.listed.has(names.hex)) {
      this.log.limited('endpoint-unlisted', 'core', LEVEL.important, `ENI ${names.hex} is not in the endpoints file (--endpoints-only): dropping its traffic`);
      this.workers.post(worker, { t: 'reject', hi, lo, failed: false, unlisted: true });
      return;
    }
    void this.begin(worker, hi, lo);
  }

  /** Allocate a slot for a new endpoint and create it in its serial queue; resolves when it is
   * ready or has failed (null: refused at once). */
  private begin(worker: number, hi: number, lo: number): Promise<void> | null {
    const eni = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    const names = endpointNames(eni);
    const refused = this.refusedUntil.get(names.hex);
    if (refused !== undefined) {
      if (monoMs() < refused) {
        this.workers.post(worker, { t: 'reject', hi, lo, failed: true });
        return null;
      }
      this.refusedUntil.delete(names.hex);
    }
    const slot = this.freeSlots.pop();
    if (slot === undefined) {
      this.log.limited('endpoint-limit', 'core', LEVEL.important, `endpoint limit (${this.opts.maxEndpoints}) reached; dropping traffic of ENI ${names.hex}`);
      this.workers.post(worker, { t: 'reject', hi, lo, failed: false });
      return null;
    }
    const e = this.blank(eni, slot, (this.slotGen[slot] + 1) & 0xffff, 'creating');
    e.netns = this.netnsOf(e);
    return this.serial.run(e.hex, () => this.create(e));
  }

  /** A new endpoint in `slot` (taken from the free ones) with that generation, in the tables. */
  private blank(eni: bigint, slot: number, gen: number, state: EndpointState): Endpoint {
    const names = endpointNames(eni);
    const e: Endpoint = {
      eni,
      hi: Number(eni >> 32n) >>> 0,
      lo: Number(eni & 0xffffffffn) >>> 0,
      hex: names.hex,
      gwi: names.gwi,
      gwo: names.gwo,
      slot,
      epId: (slot | (gen << 16)) >>> 0,
      state,
      gwiFds: [],
      gwoFds: [],
      detached: new Array<boolean>(this.opts.workers).fill(false),
      destroyed: false,
      createdMs: monoMs(),
      readyMs: 0,
      recreate: false,
      hookRunning: null,
      lastHook: null,
      sysctl: newSysctlMarks(),
      entry: this.listed.get(names.hex) ?? null,
      netns: null,
      netnsCreated: false,
    };
    this.slotGen[slot] = gen;
    const free = this.freeSlots.lastIndexOf(slot);
    if (free >= 0) this.freeSlots.splice(free, 1);
    this.endpoints.set(e.hex, e);
    this.bySlot[slot] = e;
    return e;
  }

  /** Start-up after a crash, before the workers start (src/control/daemon.ts; docs/operations.md,
   * "Crashes and restarts"). The dead process's devices are persistent (setPersist) and have no
   * queue left: carrier 0 in /sys/class/net/X/carrier (any open queue, attached or not, keeps
   * the carrier on), so devices another living process holds (a second gwlbtun, a hand-over
   * under way) are never touched. Of those:
   * - each endpoint of the state file (`saved`) whose gwi- (and gwo-) is such an orphan, a
   *   multi-queue TUN device without packet information, in this namespace (sysfs shows this
   *   namespace's devices), is adopted: one queue per worker opened on it (TUNSETIFF attaches to
   *   an existing persistent device; the first queue sets its flags, --offload's virtio header
   *   included), the same slot and endpoint id (the flows' keys carry them), ready, no CREATE hook,
   *   its -t idle time counted from now. The others are skipped with a line saying why.
   * - every other orphan named gwi-/gwo-<base 60> (an endpoint created after the last snapshot,
   *   or all of them when the file is missing, stale or corrupt) is destroyed cleanly: a queue
   *   opened, DESTROY run (its CREATE had run), persistence cleared, the device gone; its next
   *   packet creates it again as after a restart (CREATE). Adopting it by name instead would keep
   *   an endpoint whose flows are unknown anyway, and the file's reasons for being wrong unknown.
   * Returns the endpoint ids adopted and the number destroyed. */
  async adoptLeftovers(saved: readonly Omit<HandedEndpoint, 'gwiFds' | 'gwoFds'>[], sysNet = '/sys/class/net'): Promise<{ adopted: Set<number>; destroyed: number }> {
    this.listed = new Map(this.opts.endpoints.map((x) => [x.hex, x]));
    const orphans = orphanDevices(sysNet);
    const adopted = new Set<number>();
    for (const x of saved) {
      const names = endpointNames(BigInt('0x' + x.hex));
      const why =
        x.slot >= this.opts.maxEndpoints ? `slot ${x.slot} over --max-endpoints ${this.opts.maxEndpoints}`
        : this.bySlot[x.slot] !== undefined || this.endpoints.has(x.hex) ? 'listed twice'
        : x.netns !== null ? `in network namespace ${x.netns} (never persistent)`
        : [names.gwi, ...(this.opts.noReturn ? [] : [names.gwo])].map((n) => (orphans.has(n) ? orphans.get(n)! : `${n} is not a persistent gwlbtun interface without a process`)).find((w) => w !== '') ?? null;
      if (why !== null) {
        this.log.important('tunnel', `state file: endpoint ${x.hex} not adopted: ${why}`);
        continue;
      }
      const e = this.blank(BigInt('0x' + x.hex), x.slot, x.epId >>> 16, 'ready');
      try {
        for (let i = 0; i < this.opts.workers; i++) {
          e.gwiFds.push(this.nat.tunOpen(e.gwi, this.opts.offload));
          if (!this.opts.noReturn) e.gwoFds.push(this.nat.tunOpen(e.gwo, this.opts.offload));
        }
        if (this.opts.offload) this.setOffloads(e);
      } catch (err) {
        this.log.important('tunnel', `state file: endpoint ${x.hex} not adopted: ${(err as Error).message}`);
        for (const fd of [...e.gwiFds, ...e.gwoFds]) this.nat.close(fd); // still persistent: destroyed below
        this.releaseSlot(e);
        continue;
      }
      orphans.delete(e.gwi);
      orphans.delete(e.gwo);
      e.readyMs = monoMs();
      adopted.add(e.epId);
    }
    // The rest, by ENI: destroyed with their DESTROY hook.
    const left = new Map<string, bigint>();
    for (const [name, bad] of orphans) {
      const eni = bad === '' ? eniFromBase60(name.slice(4)) : null;
      if (eni !== null) left.set(endpointNames(eni).hex, eni);
    }
    const work: Promise<void>[] = [];
    for (const [hex, eni] of left) {
      const slot = this.freeSlots[this.freeSlots.length - 1];
      const names = endpointNames(eni);
      if (slot === undefined || this.endpoints.has(hex)) {
        // No slot for it, or a gwo- beside an adopted gwi- (--no-return now): the device alone goes.
        for (const n of [names.gwi, names.gwo]) if (orphans.get(n) === '') this.dropDevice(n);
        continue;
      }
      const e = this.blank(eni, slot, (this.slotGen[slot] + 1) & 0xffff, 'ready');
      try {
        if (orphans.get(e.gwi) === '') e.gwiFds.push(this.nat.tunOpen(e.gwi, false));
        if (orphans.get(e.gwo) === '') e.gwoFds.push(this.nat.tunOpen(e.gwo, false));
      } catch (err) {
        this.log.important('tunnel', `leftover interfaces of endpoint ${hex}: ${(err as Error).message}`);
      }
      this.log.important('tunnel', `endpoint ${endpointLabel(e)}: ${e.gwi}/${e.gwo} left by a gwlbtun that crashed, not in its state file; destroying (DESTROY hook)`);
      work.push(this.destroy(e, 'left by a crash, not in the state file'));
    }
    await Promise.all(work);
    return { adopted, destroyed: work.length };
  }

  /** A leftover device alone: persistence cleared, gone with its queue (no hook). */
  private dropDevice(name: string): void {
    try {
      const fd = this.nat.tunOpen(name, false);
      try {
        this.nat.tunSetPersist(fd, false);
      } finally {
        this.nat.close(fd);
      }
      this.log.important('tunnel', `${name}: left by a gwlbtun that crashed; removed`);
    } catch (err) {
      this.log.important('tunnel', `${name}: left by a gwlbtun that crashed; cannot remove it: ${(err as Error).message}`);
    }
  }

  /** Why a hand-over cannot start now, or null: every endpoint must be ready, none with a hook
   * running (its state would be half of one process's and half of the other's). */
  handOverBlocker(): string | null {
    for (const e of this.endpoints.values()) {
      if (e.state !== 'ready' || e.hookRunning !== null) return `endpoint ${endpointLabel(e)} is ${e.hookRunning !== null ? `running its ${e.hookRunning.toUpperCase()} hook` : e.state}`;
    }
    return null;
  }

  /** The ready endpoints, for the new process (adopt()). */
  handOverState(): HandedEndpoint[] {
    return [...this.endpoints.values()].map((e) => ({
      hex: e.hex,
      slot: e.slot,
      epId: e.epId,
      gwiFds: [...e.gwiFds],
      gwoFds: [...e.gwoFds],
      readyMs: e.readyMs,
      lastMs: Math.max(e.readyMs, this.counters.epMax(e.slot, EP.LAST_RX_MS), this.counters.epMax(e.slot, EP.LAST_TX_MS)),
      netns: e.netns,
      netnsCreated: e.netnsCreated,
    }));
  }

  /** The new process of a hand-over, before its workers start: take the endpoints over as the old
   * process had them (the same slots and ids, queues attached, ready), with no hook. Throws, having
   * changed nothing, on a description that does not fit this process (slot, id, queue count). */
  adopt(list: readonly HandedEndpoint[]): void {
    const queues = this.opts.workers;
    const seen = new Set<number>();
    for (const x of list) {
      const names = /^[0-9a-f]{17}$/.test(x.hex) ? endpointNames(BigInt('0x' + x.hex)) : null;
      if (names === null || names.hex !== x.hex) throw new Error(`hand-over: bad ENI ID '${x.hex}'`);
      if (!(Number.isInteger(x.slot) && x.slot >= 0 && x.slot < this.opts.maxEndpoints) || seen.has(x.slot) || (x.epId & 0xffff) !== x.slot) {
        throw new Error(`hand-over: endpoint ${x.hex}: slot ${x.slot} does not fit --max-endpoints ${this.opts.maxEndpoints}`);
      }
      seen.add(x.slot);
      if (x.gwiFds.length !== queues || x.gwoFds.length !== (this.opts.noReturn ? 0 : queues)) throw new Error(`hand-over: endpoint ${x.hex}: ${x.gwiFds.length} queues for ${queues} workers`);
    }
    this.listed = new Map(this.opts.endpoints.map((x) => [x.hex, x]));
    for (const x of list) {
      const eni = BigInt('0x' + x.hex);
      const names = endpointNames(eni);
      const e: Endpoint = {
        eni,
        hi: Number(eni >> 32n) >>> 0,
        lo: Number(eni & 0xffffffffn) >>> 0,
        hex: names.hex,
        gwi: names.gwi,
        gwo: names.gwo,
        slot: x.slot,
        epId: x.epId >>> 0,
        state: 'ready',
        gwiFds: [...x.gwiFds],
        gwoFds: [...x.gwoFds],
        detached: new Array<boolean>(queues).fill(false),
        destroyed: false,
        createdMs: x.readyMs,
        // The -t idle check reads readyMs and this process's counters (zero): from the last packet.
        readyMs: Math.max(x.readyMs, x.lastMs),
        recreate: false,
        hookRunning: null,
        lastHook: null,
        sysctl: newSysctlMarks(),
        entry: this.listed.get(names.hex) ?? null,
        netns: x.netns,
        netnsCreated: x.netnsCreated,
      };
      this.slotGen[x.slot] = x.epId >>> 16;
      const free = this.freeSlots.indexOf(x.slot);
      if (free >= 0) this.freeSlots.splice(free, 1);
      this.endpoints.set(e.hex, e);
      this.bySlot[x.slot] = e;
    }
  }

  /** Start-up (--endpoints): create every listed endpoint; resolves when each is ready or has
   * failed (failures are logged, as for any endpoint; its traffic is then refused for a while
   * and creation is tried again by its next packet). */
  async createListed(entries: readonly EndpointEntry[]): Promise<void> {
    this.listed = new Map(entries.map((x) => [x.hex, x]));
    await Promise.all(entries.map((x) => this.ensureListed(x)));
  }

  /** SIGHUP (--endpoints): the file as read again. Endpoints added to it are created, those
   * removed from it destroyed (hooks run), the others left running: a new name or new hooks
   * apply in place (the hooks from their next run on), no hook runs again, no packet waits. */
  async reload(entries: readonly EndpointEntry[]): Promise<{ added: number; removed: number; kept: number }> {
    const old = this.listed;
    this.listed = new Map(entries.map((x) => [x.hex, x]));
    const work: Promise<void>[] = [];
    let removed = 0;
    let added = 0;
    for (const hex of old.keys()) {
      if (this.listed.has(hex)) continue;
      const e = this.endpoints.get(hex);
      if (e === undefined) continue;
      removed++;
      work.push(this.destroy(e, 'removed from the endpoints file'));
    }
    for (const x of entries) {
      if (!old.has(x.hex) && !this.endpoints.has(x.hex)) added++;
      work.push(this.ensureListed(x));
    }
    await Promise.all(work);
    return { added, removed, kept: entries.length - added };
  }

  /** A listed endpoint exists: created if it does not, its entry updated in place if it does. */
  private ensureListed(x: EndpointEntry): Promise<void> {
    const e = this.endpoints.get(x.hex);
    if (e !== undefined) {
      if (e.entry !== x) {
        const was = e.entry === null ? 'unlisted' : e.entry.name;
        if (was !== x.name) this.log.important('tunnel', `endpoint ${e.hex}: now named ${x.name} (was ${was})`);
        e.entry = x;
        const ns = this.netnsOf(e);
        if (ns !== e.netns) this.log.important('tunnel', `endpoint ${endpointLabel(e)}: its network namespace (${ns ?? 'none'}) applies when it is created again; it stays in ${e.netns ?? "gwlbtun's own"} (remove it from the file, reload, add it back)`);
      }
      if (e.state === 'destroying') e.recreate = true; // created again, as listed, once destroyed
      return Promise.resolve();
    }
    if (this.shuttingDown()) return Promise.resolve();
    return this.begin(0, Number(x.eni >> 32n), Number(x.eni & 0xffffffffn)) ?? Promise.resolve();
  }

  /** The namespace an endpoint gets: its own from the file, else with --netns-per-endpoint
   * `gwlbtun-` and its name (or its interfaces' base-60 ENI ID), else none. */
  private netnsOf(e: Endpoint): string | null {
    if (e.entry !== null && e.entry.netns !== null) return e.entry.netns;
    if (!this.opts.netnsPerEndpoint) return null;
    return `gwlbtun-${e.entry !== null ? e.entry.name : e.gwi.slice(4)}`;
  }

  /** --offload on: what the kernel may hand over unfinished, probed per device (src/io/offload.ts);
   * logged when it first differs from the last endpoint's. */
  private setOffloads(e: Endpoint): void {
    for (const fds of [e.gwiFds, e.gwoFds]) {
      if (fds.length === 0) continue;
      const got = applyOffloads(this.nat, fds[0]);
      if (got < 0) throw new Error(`TUNSETOFFLOAD: errno ${-got}`);
      if (got !== this.offloadsLogged) {
        this.offloadsLogged = got;
        this.log.important('tunnel', `offloads on: virtio headers; the kernel hands over unfinished: ${offloadNames(got)}`);
      }
    }
  }
  private offloadsLogged = -1;

  private async create(e: Endpoint): Promise<void> {
    try {
      for (let i = 0; i < this.opts.workers; i++) {
        e.gwiFds.push(this.nat.tunOpen(e.gwi, this.opts.offload));
        if (!this.opts.noReturn) e.gwoFds.push(this.nat.tunOpen(e.gwo, this.opts.offload));
      }
      if (this.opts.offload) this.setOffloads(e);
      this.setPersist(e, true);
      this.sysctls?.apply(e); // before the links go up and before the hook
      this.nat.linkSetup(e.gwi, TUN_MTU, TUN_TXQUEUELEN);
      if (!this.opts.noReturn) this.nat.linkSetup(e.gwo, TUN_MTU, TUN_TXQUEUELEN);
      // A worker that is down (restarting) must not have the kernel queue returns on its queues.
      for (let i = 0; i < this.opts.workers; i++) {
        e.detached[i] = false;
        if (!this.workers.alive(i)) this.setQueues(e, i, false);
      }
      if (e.netns !== null) {
        e.netnsCreated = await ensureNetns(e.netns);
        await moveIntoNetns(e.netns, this.opts.noReturn ? [e.gwi] : [e.gwi, e.gwo], e.netnsCreated);
      }
    } catch (err) {
      this.log.critical('tunnel', `cannot create interfaces for endpoint ${endpointLabel(e)}: ${(err as Error).message}`);
      this.closeFds(e);
      await this.dropNetns(e);
      this.releaseSlot(e);
      for (let i = 0; i < this.opts.workers; i++) this.workers.post(i, { t: 'reject', hi: e.hi, lo: e.lo, failed: true });
      return;
    }
    this.log.important('tunnel', `endpoint ${endpointLabel(e)}: created ${e.gwi}${this.opts.noReturn ? '' : ' and ' + e.gwo}${e.netns === null ? '' : ` in network namespace ${e.netns}${e.netnsCreated ? ' (created)' : ''}`}`);
    await this.hook('create', e);
    if (this.shuttingDown()) return; // shutdown() destroys it
    this.sysctls?.check(e); // changed during the hook (udev): fix it before held packets go
    e.state = 'ready';
    e.readyMs = monoMs();
    this.endpointsCreated++;
    for (let i = 0; i < this.opts.workers; i++) this.sendAdd(e, i);
  }

  private sendAdd(e: Endpoint, i: number): void {
    if (!this.workers.alive(i)) return; // it gets every endpoint when it is up
    if (e.detached[i]) {
      try {
        this.setQueues(e, i, true);
      } catch (err) {
        this.log.important('tunnel', `endpoint ${endpointLabel(e)}: cannot attach worker ${i}'s queues again: ${(err as Error).message}`);
        return;
      }
    }
    this.workers.post(i, { t: 'add', hi: e.hi, lo: e.lo, slot: e.slot, epId: e.epId, gwi: e.gwiFds[i], gwo: e.gwoFds[i] ?? -1 });
  }

  /** Attach or detach worker i's queues of an endpoint (TUNSETQUEUE). */
  private setQueues(e: Endpoint, i: number, attach: boolean): void {
    for (const fd of [e.gwiFds[i], e.gwoFds[i]]) if (fd !== undefined && fd >= 0) this.nat.tunSetQueue(fd, attach);
    e.detached[i] = !attach;
  }

  private async hook(kind: 'create' | 'destroy', e: Endpoint): Promise<HookResult | null> {
    const own = e.entry === null ? null : kind === 'create' ? e.entry.createHook : e.entry.destroyHook;
    const file = own ?? (kind === 'create' ? this.opts.createHook : this.opts.destroyHook);
    if (file === null) return null;
    const args = [kind === 'create' ? 'CREATE' : 'DESTROY', e.gwi, this.opts.noReturn ? 'none' : e.gwo, e.hex];
    e.hookRunning = kind;
    const argv = e.netns === null ? { file, args } : inNetns(e.netns, file, args);
    const r = await runHook(argv.file, argv.args, this.opts.hookTimeoutS * 1000);
    e.hookRunning = null;
    const st = this.hookStats[kind];
    st.runs++;
    st.durationMsTotal += r.durationMs;
    const ok = r.code === 0 && !r.timedOut && r.error === undefined;
    if (!ok) st.failures++;
    if (r.timedOut) st.timeouts++;
    e.lastHook = {
      kind,
      result: r.error !== undefined ? 'could not run' : r.timedOut ? 'timed out' : r.code !== 0 ? 'failed' : 'ok',
      exit: r.code,
      killed: r.killed,
      outlived: r.outlived,
      ms: Math.round(r.durationMs),
      atMs: monoMs(),
      output: r.output.trimEnd().slice(0, HOOK_OUTPUT_MAX),
    };
    const fields = { hook: file, args: args.join(' '), exit: r.code, signal: r.signal, killed: r.killed, outlived: r.outlived, ms: r.durationMs };
    const left = r.outlived ? (r.timedOut ? ' (processes of its group outlived it)' : '; processes it started are still running (left alone)') : '';
    if (r.error !== undefined) this.log.important('core', `${kind} hook could not run: ${r.error}`, fields);
    else if (r.timedOut) this.log.important('core', `${kind} hook timed out after ${this.opts.hookTimeoutS} s and was killed: SIGTERM to its process group${r.killed === 'KILL' ? ', then SIGKILL' : ''}${left}`, fields);
    else if (r.code !== 0) this.log.important('core', `${kind} hook failed${left}`, fields);
    else this.log.info('core', `${kind} hook done${left}`, fields);
    // A failing hook's output is what the operator needs to see: log it at the failure's level.
    if (r.output.length > 0) this.log.log('core', ok ? LEVEL.info : LEVEL.important, `${kind} hook output: ${r.output.trimEnd()}`);
    return r;
  }

  private checkIdleEndpoints(): void {
    const limitMs = this.opts.endpointTimeoutS * 1000;
    const now = monoMs();
    for (const e of this.endpoints.values()) {
      if (e.state !== 'ready' || this.listed.has(e.hex)) continue; // listed endpoints stay
      const last = Math.max(e.readyMs, this.counters.epMax(e.slot, EP.LAST_RX_MS), this.counters.epMax(e.slot, EP.LAST_TX_MS));
      if (now - last >= limitMs) {
        this.log.important('tunnel', `endpoint ${endpointLabel(e)}: no traffic for ${this.opts.endpointTimeoutS} s; destroying`);
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
      await this.hook('destroy', e);
      this.closeFds(e);
      await this.dropNetns(e);
      e.destroyed = true;
      this.endpointsDestroyed++;
      this.log.important('tunnel', `endpoint ${endpointLabel(e)}: destroyed (${why})`);
      this.counters.resetEndpoint(e.slot);
      this.releaseSlot(e);
      if (why === 'device deleted' && monoMs() - e.readyMs < 5000 && !this.shuttingDown()) {
        // Deleted within seconds of its creation (a hook that deletes its own interface?):
        // refuse its traffic for a while (counted as endpoint_failed) instead of re-creating it
        // in a tight loop; the workers forget the refusal after 10 s.
        this.log.important('tunnel', `endpoint ${endpointLabel(e)}: interface deleted ${Math.round(monoMs() - e.readyMs)} ms after creation; refusing its traffic for 10 s`);
        if (this.refusedUntil.size >= this.opts.maxEndpoints) this.refusedUntil.clear(); // bounded
        this.refusedUntil.set(e.hex, monoMs() + REFUSE_MS);
        for (let i = 0; i < this.opts.workers; i++) this.workers.post(i, { t: 'reject', hi: e.hi, lo: e.lo, failed: true });
        return;
      }
      if (e.recreate && !this.shuttingDown()) {
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
    const pending = new Set<number>(this.workers.aliveIndexes());
    if (pending.size === 0) return Promise.resolve();
    const id = e.epId;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        const wait = this.removeWaits.get(id);
        if (wait === undefined) return;
        for (const i of wait.pending) {
          this.log.critical('core', `worker ${i} did not let go of endpoint ${endpointLabel(e)} within ${ACK_TIMEOUT_MS} ms; terminating it`);
          this.workers.terminate(i);
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
      for (const i of pending) this.workers.post(i, { t: 'remove', slot: e.slot, epId: id });
    });
  }

  /** At shutdown, once no worker runs any more (so none uses a queue and no 'remove' round trip
   * is needed): every endpoint, in its own serial queue. One being created finishes its CREATE
   * hook first, one already being destroyed (idle, device deleted) finishes that and is skipped
   * here, so DESTROY runs exactly once per endpoint. */
  async destroyAll(): Promise<void> {
    const all = [...this.endpoints.values()];
    await Promise.all(
      all.map((e) =>
        this.serial.run(e.hex, async () => {
          if (e.destroyed) return;
          e.state = 'destroying';
          await this.hook('destroy', e);
          this.closeFds(e);
          await this.dropNetns(e);
          e.destroyed = true;
          this.endpointsDestroyed++;
          this.releaseSlot(e);
        }),
      ),
    );
  }

  /** Remove the endpoint's namespace if gwlbtun created it (its devices are gone with their
   * queues; a process a hook left running there keeps it alive until it exits). */
  private async dropNetns(e: Endpoint): Promise<void> {
    if (e.netns === null || !e.netnsCreated) return;
    e.netnsCreated = false;
    try {
      await removeNetns(e.netns);
    } catch (err) {
      this.log.important('tunnel', `endpoint ${endpointLabel(e)}: cannot remove network namespace ${e.netns}: ${(err as Error).message}`);
    }
  }

  /** Crash survival (docs/operations.md, "Crashes and restarts"): the devices of an endpoint are
   * made persistent right after their queues open, so that a crash (SIGKILL, the OOM killer, an
   * abort, systemd's watchdog) leaves them, with the user's routes, firewall state and conntrack,
   * for the next process to adopt (adoptLeftovers). Every other ending goes through closeFds,
   * which clears it first, so the devices go with their last queue exactly as before: a signal
   * (SIGTERM, SIGINT), the -t idle check, a reload removing an endpoint, a failed creation, a
   * hand-over's fallback. A stop by signal is always such an ending: systemd tells a process
   * nothing that would tell `systemctl restart` from `systemctl stop`, and a stop for good must
   * neither leave devices nor skip DESTROY hooks; the restart that keeps flows is the hand-over
   * (SIGUSR2). Not with --no-adopt, nor for an endpoint in a network namespace of its own: its
   * devices live there, where a new process's queues cannot be opened (TUNSETIFF finds devices in
   * the opener's namespace), so they go with a crash as before. Refused (it never is, with
   * CAP_NET_ADMIN): logged, the endpoint works, a crash then loses it. */
  private setPersist(e: Endpoint, on: boolean): void {
    if (on && (!this.opts.adopt || e.netns !== null)) return;
    for (const fd of [e.gwiFds[0], e.gwoFds[0]]) {
      if (fd === undefined || fd < 0) continue;
      try {
        this.nat.tunSetPersist(fd, on);
      } catch (err) {
        if (on) this.log.important('tunnel', `endpoint ${endpointLabel(e)}: cannot make its interfaces persistent (a crash will lose them): ${(err as Error).message}`);
        // off: the device is gone already
      }
    }
  }

  /** Every endpoint's devices persistent (on: as setPersist allows) or not. Off: an exit without
   * the shutdown's teardown (a second signal, the shutdown's time limit), so that even then only a
   * crash leaves devices. On: after a hand-over, whose old process may have run with --no-adopt
   * or an older version; off there too with --no-adopt. */
  setAllPersistent(on: boolean): void {
    for (const e of this.endpoints.values()) if (!e.destroyed) this.setPersist(e, on);
  }

  private closeFds(e: Endpoint): void {
    this.setPersist(e, false); // the devices go with their last queue, as they always did
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
}
