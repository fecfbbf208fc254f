// The control plane: runs on the main thread and carries no traffic (the only packets it reads are
// what a dead worker left behind, counted and discarded: src/control/workers.ts). This module
// composes it:
//
// - the worker supervisor (src/control/workers.ts): starts the data-plane workers, owns their
//   descriptors, restarts one that dies;
// - the endpoint lifecycle (src/control/endpoints.ts): creates and destroys endpoints (TUN
//   devices, hooks) on the workers' requests, idle timeouts and deleted devices, and those of the
//   endpoints file (--endpoints: created in start() before it resolves, so before gwlbtun reports
//   healthy; reloadEndpoints() on SIGHUP);
// - the flow sweeper: expires idle flows from the shared flow table a slice at a time (every
//   100 ms);
// - start() and shutdown(), and the read-only surface that health and /metrics
//   (src/ops/health.ts) read: counters, endpoints, flows, hook statistics, worker status;
// - the two halves of a hand-over (SIGUSR2, src/control/handover.ts): handOff() and resume() in
//   the old process, start(adopted) in the new one;
// - crash survival (docs/operations.md, "Crashes and restarts"; off with --no-adopt): the state
//   file written every --snapshot-interval seconds by its own thread (src/control/state.ts), and
//   at a start that is no hand-over, the adoption of what a crashed process left (the persistent
//   interfaces, src/control/endpoints.ts adoptLeftovers, and the flows of those adopted) before
//   the workers start. A clean stop removes the file.

import { createFlowTableBuffer, FlowTable, SNAPSHOT_RECORD_WORDS } from '../flow/table';
import { monoMs, nowTicks, TICKS_PER_SECOND } from '../base/clock';
import { CounterReader, createCountersBuffer } from '../dataplane/counters';
import { InterfaceSysctls } from './sysctl';
import type { Logger } from '../base/log';
import { EndpointLifecycle, type Endpoint, type HandedEndpoint, type HookStats } from './endpoints';
import { WorkerSupervisor, type HandedSendDevice, type WorkerStatus } from './workers';
import type { DaemonOptions } from './options';
import { loadEndpointsFile, type EndpointEntry } from './endpoints-file';
import * as fs from 'node:fs';
import { bootId, readStateFile, removeStateFile, stateFilePath, StateWriter, type LoadedState, type SavedState } from './state';

/** What a hand-over gives the new process's start(): the previous process's sockets and endpoints
 * (descriptors as numbered in this process) and its flows (FlowTable snapshot records). */
export interface Adopted {
  udpFds: number[];
  endpoints: HandedEndpoint[];
  flows: Int32Array;
  flowCount: number;
  /** The send device of --offload on (`gwlbtx0`), when it had one. */
  sendDevice: HandedSendDevice | null;
}

export { TUN_MTU, TUN_TXQUEUELEN, type Endpoint, type EndpointState, type HookStats } from './endpoints';
export type { DaemonOptions } from './options';

export class Daemon {
  readonly startedMs = monoMs();
  readonly counterSab: SharedArrayBuffer;
  readonly counters: CounterReader;
  readonly flows: FlowTable | null;
  readonly workers: WorkerSupervisor;
  readonly lifecycle: EndpointLifecycle;
  readonly endpoints: Map<string, Endpoint>; // by ENI hex
  readonly bySlot: (Endpoint | undefined)[];
  readonly hookStats: Record<'create' | 'destroy', HookStats>;
  flowExpiries = 0;
  /** Flows restored from a hand-over's snapshot (the count of those stored). */
  restoredFlows = 0;
  shuttingDown = false;
  /** A signal started the drain (--drain, src/control/stop.ts): health answers 503 while
   * traffic still flows, until shutdown() begins. */
  draining = false;
  /** null with --no-sysctl. */
  readonly sysctls: InterfaceSysctls | null;

  private readonly flowSab: SharedArrayBuffer | null;
  private timers: NodeJS.Timeout[] = [];
  /** The state file's writer; null with --no-adopt or --snapshot-interval 0. */
  readonly stateWriter: StateWriter | null;

  constructor(
    readonly opts: DaemonOptions,
    readonly log: Logger,
  ) {
    this.counterSab = createCountersBuffer(opts.workers, opts.maxEndpoints);
    this.counters = new CounterReader(this.counterSab, opts.workers, opts.maxEndpoints);
    this.flowSab = opts.noReturn ? null : createFlowTableBuffer(opts.maxFlows);
    this.flows = this.flowSab === null ? null : new FlowTable(this.flowSab);
    this.sysctls = opts.manageSysctls ? new InterfaceSysctls(log, opts.noReturn) : null;
    const stopping = (): boolean => this.shuttingDown;
    // The supervisor tells the lifecycle about workers coming and going; the lifecycle reaches
    // the workers through the supervisor. Neither calls the other before start().
    this.workers = new WorkerSupervisor(
      opts,
      log,
      this.counters,
      { counterSab: this.counterSab, flowSab: this.flowSab },
      {
        workerUp: (i) => this.lifecycle.workerUp(i),
        workerExited: (i, drain) => {
          this.flows?.suspectStuck(); // it may have died holding a flow entry (FlowTable.sweep)
          return this.lifecycle.workerExited(i, drain);
        },
        message: (m) => this.lifecycle.message(m),
      },
      stopping,
    );
    this.lifecycle = new EndpointLifecycle(opts, log, this.counters, this.sysctls, this.workers, stopping);
    this.endpoints = this.lifecycle.endpoints;
    this.bySlot = this.lifecycle.bySlot;
    this.hookStats = this.lifecycle.hookStats;
    this.stateWriter = opts.adopt && opts.snapshotIntervalS > 0 ? new StateWriter(stateFilePath(opts.stateDir), this.flowSab, opts.snapshotIntervalS, log, () => this.savedState()) : null;
  }

  /** The state file's JSON part: the ready endpoints (a hand-over's description minus descriptors). */
  savedState(): SavedState {
    const ready = new Set([...this.endpoints.values()].filter((e) => e.state === 'ready').map((e) => e.epId));
    return {
      pid: process.pid,
      bootId: bootId(),
      writtenMonoMs: monoMs(),
      writtenWallMs: Date.now(),
      workers: this.opts.workers,
      noReturn: this.opts.noReturn,
      offload: this.opts.offload,
      endpoints: this.lifecycle
        .handOverState()
        .filter((e) => ready.has(e.epId))
        .map(({ hex, slot, epId, readyMs, lastMs, netns, netnsCreated }) => ({ hex, slot, epId, readyMs, lastMs, netns, netnsCreated })),
    };
  }

  /** An exit that is neither a crash nor a hand-over (an exit at once: a second signal, the
   * shutdown's time limit): nothing is left for a next process to adopt -- the devices not torn
   * down yet lose their persistence (they go with the process, as before), the state file goes.
   * Synchronous (process.exit follows). */
  forgetCrashState(): void {
    this.lifecycle.setAllPersistent(false);
    if (this.opts.adopt) {
      try {
        removeStateFile(stateFilePath(this.opts.stateDir));
      } catch {
        // left: the next start finds no device for it
      }
    }
  }

  /** Start-up after a crash (no hand-over; not with --no-adopt): read the state file, adopt the
   * interfaces the dead process left and restore the flows of those adopted, destroy the other
   * leftovers (DESTROY hooks). A missing, unreadable, corrupt, stale (another boot) or
   * other-version file: one line, and nothing of it is used. Never throws. */
  private async adoptAfterCrash(): Promise<void> {
    const file = stateFilePath(this.opts.stateDir);
    if (this.stateWriter !== null) {
      try {
        fs.mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o700 });
      } catch (e) {
        this.log.important('core', `state directory ${this.opts.stateDir}: ${(e as Error).message}`);
      }
    }
    let loaded: LoadedState | null = null;
    try {
      loaded = readStateFile(file);
      if (loaded !== null && loaded.state.bootId !== bootId()) throw new Error('written before the last reboot');
    } catch (e) {
      this.log.important('core', `state file ${file} not used (${(e as Error).message}): starting afresh; interfaces a crash left are destroyed`);
      loaded = null;
    }
    let r: { adopted: Set<number>; destroyed: number };
    try {
      r = await this.lifecycle.adoptLeftovers(loaded?.state.endpoints ?? []);
    } catch (e) {
      this.log.critical('core', `adopting what a crash left: ${(e as Error).message}`);
      return;
    }
    if (loaded === null) return;
    let stored = 0;
    const recs = loaded.records;
    if (this.flows !== null && r.adopted.size > 0) {
      for (let i = 0; i < loaded.flowCount; i++) {
        const off = i * SNAPSHOT_RECORD_WORDS;
        if (r.adopted.has(recs[off] >>> 0) && this.flows.restore(recs, off) > 0) stored++; // word 0: the endpoint id
      }
    }
    this.restoredFlows = stored;
    const age = (monoMs() - loaded.state.writtenMonoMs) / 1000;
    this.log.important('core', `adopted ${r.adopted.size} endpoint(s) and ${stored} flow(s) from ${file} written ${age.toFixed(1)} s ago by PID ${loaded.state.pid}` + (r.destroyed > 0 ? `; ${r.destroyed} endpoint(s) it did not list destroyed` : ''));
  }

  /** The send device of --offload on (`gwlbtx0`), or null. */
  get sendDevice(): string | null {
    return this.workers.sendDevice;
  }

  /** Whether the returns go through the send device now: null when there is none or no GWLB
   * address is known yet; false when the egress device towards GWLB would pass its work on
   * unfinished (a veth: src/control/egress.ts) and the returns go through the raw socket. */
  get sendDeviceInUse(): boolean | null {
    return this.workers.sendDeviceInUse;
  }

  get endpointsCreated(): number {
    return this.lifecycle.endpointsCreated;
  }

  get endpointsDestroyed(): number {
    return this.lifecycle.endpointsDestroyed;
  }

  /** Start the workers; resolves once every worker has bound its UDP socket, rejects with the
   * first worker's setup error (port in use, missing capability). */
  async start(adopted: Adopted | null = null): Promise<void> {
    if (adopted !== null) {
      // Endpoints and flows first: a worker gets every ready endpoint when it is up, and its first
      // return looks its flow up.
      this.lifecycle.adopt(adopted.endpoints);
      if (this.flows !== null) this.restoreFlows(adopted.flows, adopted.flowCount);
      this.lifecycle.setAllPersistent(this.opts.adopt);
    } else if (this.opts.adopt) await this.adoptAfterCrash();
    await this.workers.startAll(adopted === null ? null : adopted.udpFds, adopted?.sendDevice ?? null);
    if (this.shuttingDown) return; // a signal arrived during start-up
    const sendDevice = this.sendDevice;
    if (sendDevice !== null) this.sysctls?.watchDevice(sendDevice); // kept from now on (src/control/sysctl.ts)
    this.startTimers();
    // The endpoints file's endpoints exist, their CREATE hooks done, before start() resolves: the
    // health server starts after it, so GWLB sees the target healthy only then. (After a hand-over
    // the listed endpoints are there already; only those added to the file meanwhile are created.)
    if (this.opts.endpoints.length > 0) {
      await this.lifecycle.createListed(this.opts.endpoints);
      this.log.important('core', `endpoints file ${this.opts.endpointsFile}: ${this.opts.endpoints.length} endpoint(s) ${adopted === null ? 'created' : 'in place'}`);
    }
  }

  private restoreFlows(recs: Int32Array, count: number): void {
    const flows = this.flows!;
    let stored = 0;
    for (let i = 0; i < count; i++) if (flows.restore(recs, i * SNAPSHOT_RECORD_WORDS) > 0) stored++;
    this.restoredFlows = stored;
  }

  /** The flow sweeper, the endpoint timers (-t, sysctls). */
  private startTimers(): void {
    const sweepBudget = this.flows === null ? 0 : Math.max(1, Math.ceil(this.flows.buckets / 10));
    const live = (epId: number): boolean => this.lifecycle.live(epId);
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
    for (const t of this.timers) t.unref();
    this.lifecycle.startTimers();
    this.stateWriter?.start();
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.lifecycle.stopTimers();
    this.stateWriter?.stop();
  }

  /** Why a hand-over cannot start now, or null (src/control/handover.ts). running: the workers
   * should be running (false once handOff() has stopped them). */
  handOverBlocker(running = true): string | null {
    if (this.shuttingDown) return 'shutting down';
    if (this.draining) return 'draining';
    if (running && this.workers.aliveIndexes().length !== this.opts.workers) return 'a worker is restarting';
    return this.lifecycle.handOverBlocker();
  }

  /** Hand-over, old process: stop the timers (no expiry, no -t destroy) and the workers, leaving
   * sockets, queues and flows as they are for the new process. */
  async handOff(): Promise<void> {
    this.stopTimers();
    await this.workers.handOff();
  }

  /** The hand-over failed after handOff(): carry on as before it. */
  async resume(): Promise<void> {
    await this.workers.resume();
    this.startTimers();
  }

  /** Hand-over, old process: the endpoints, the UDP sockets and the send device to pass on. */
  handOverState(): { udpFds: number[]; endpoints: HandedEndpoint[]; sendDevice: HandedSendDevice | null } {
    return { udpFds: this.workers.udpFds(), endpoints: this.lifecycle.handOverState(), sendDevice: this.workers.sendDeviceState() };
  }

  /** SIGHUP: read the endpoints file again and apply it (src/control/endpoints.ts, reload()). A
   * file that cannot be read or parsed changes nothing: the error is logged, the running
   * configuration stays. Resolves when the changes are done. */
  async reloadEndpoints(): Promise<boolean> {
    const file = this.opts.endpointsFile;
    if (file === null || this.shuttingDown) return false;
    let entries: EndpointEntry[];
    try {
      entries = loadEndpointsFile(file);
      if (entries.length > this.opts.maxEndpoints) throw new Error(`${file}: ${entries.length} endpoints listed, over --max-endpoints ${this.opts.maxEndpoints}`);
    } catch (e) {
      this.log.critical('core', `endpoints file not reloaded, the running configuration stays: ${(e as Error).message}`);
      return false;
    }
    const r = await this.lifecycle.reload(entries);
    this.log.important('core', `endpoints file ${file} reloaded: ${r.added} added, ${r.removed} removed, ${r.kept} kept`);
    return true;
  }

  /** Take the endpoint away from every worker, run DESTROY, close the queues. */
  destroy(e: Endpoint, why: string): Promise<void> {
    return this.lifecycle.destroy(e, why);
  }

  /** Healthy: every worker alive, its UDP socket bound and its loop turning (a loop iteration
   * lasts at most about 100 ms; 5 s without one means it is wedged), and neither draining nor
   * shutting down. */
  healthy(): boolean {
    if (this.shuttingDown || this.draining) return false;
    return this.workers.healthy();
  }

  workerStatus(): WorkerStatus[] {
    return this.workers.workerStatus();
  }

  /** Answer health checks with 503 from now on (GWLB then sends new flows to other targets);
   * packets keep flowing both ways, endpoints are still created and workers restarted. */
  drain(): void {
    this.draining = true;
  }

  /** Stop receiving, destroy every endpoint (DESTROY hooks), stop the workers. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.stopTimers();
    // Stop the workers first: nothing is received any more, and no worker uses a TUN queue
    // after it has exited, so the endpoints can then be taken down without 'remove' round trips.
    await this.workers.stopAll();
    await this.lifecycle.destroyAll();
    // Nothing is left to adopt: no file either (a stop by signal is always clean: setPersist in
    // src/control/endpoints.ts says why).
    if (this.opts.adopt) {
      await this.stateWriter?.close();
      try {
        removeStateFile(stateFilePath(this.opts.stateDir));
      } catch (e) {
        this.log.important('core', `state file: ${(e as Error).message}`);
      }
    }
  }
}
