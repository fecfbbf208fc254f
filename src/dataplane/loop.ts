// The data-plane packet loop of one worker: batch in, batch out.
//
//   UDP 6081 (recvmmsg) -> parse Geneve -> flow table upsert -> write inner packet to gwi-<X>
//                                                       (InboundPath, src/dataplane/inbound.ts)
//   gwi-<X>/gwo-<X> (device read) -> flow table lookup -> Geneve header in front -> device send
//                                                       (ReturnPath, src/dataplane/returns.ts)
//   control messages from the main thread, between batches
//                                                       (EndpointControl, src/dataplane/epcontrol.ts)
//
// The TUN queues, their offloads and the send tiers back to GWLB are one device
// (src/io/device.ts), made here once per worker: the data plane reads plain packets from it and
// hands it returns, nothing more.
//
// Why one synchronous loop per thread: profiles of this path (docs/protocol.md section 5) put
// about 90% of the cost in the kernel, so what matters is fewer syscalls and wake-ups per packet:
// whole batches per syscall, no hand-off between threads per packet, and a loop that only sleeps
// (in epoll_wait, at most 100 ms) when there is nothing to do. Control messages are taken
// between batches, when the shared sequence word says one is waiting.
//
// createLoop() takes everything it touches as arguments (the addon, the counter block, the flow
// table, the message port as two functions), so the same loop runs in a worker thread
// (src/dataplane/worker.ts) and, in unit tests, over the in-memory addon (src/testkit/fake.ts).
//
// Per-packet code allocates nothing (see the three parts); this file runs once per turn.

import type { NativeAddon } from '../io/native';
import { TunDevice } from '../io/device';
import { Drop } from '../wire/reasons';
import type { FlowTable } from '../flow/table';
import { monoMs, nowTicks, ticksOf } from '../base/clock';
import { Related } from './related';
import { ReturnPath, TX_BATCH, TX_ROUNDS } from './returns';
import { InboundPath, RX_BATCH, RX_COALESCE_OFF, createRxBuffer } from './inbound';
import { EndpointControl } from './epcontrol';
import { C, LOOP_HIST, recordHist } from './counters';
import { CTRL_STOP, CTRL_TX_RAW, type FromWorker, type ToWorker, type WorkerConfig } from './messages';
import { LocalEndpoints } from './endpoints';
import { HoldRing } from './hold';
import { DropLog } from './droplog';

/** Longest sleep: a stop request or control message is noticed within this. */
const IDLE_WAIT_MS = 100;

/** What the loop is given: the thread entry passes the real ones, unit tests fakes. */
export interface LoopDeps {
  nat: NativeAddon;
  /** This worker's counter block (src/dataplane/counters.ts). */
  counters: Float64Array;
  /** This worker's control cells (CTRL_STOP, CTRL_MSG_SEQ). */
  ctrl: Int32Array;
  flows: FlowTable | null;
  post(m: FromWorker): void;
  /** The next control message waiting, or undefined. */
  receive(): ToWorker | undefined;
  /** Called in the loop's housekeeping, about once a second (the worker drains its GC pauses
   * into its counter block there: src/dataplane/worker.ts). */
  housekeeping?(): void;
}

export interface Loop {
  /** One iteration: wait for readiness (at most timeoutMs), then handle what is ready. */
  turn(timeoutMs?: number): void;
  /** Turn until CTRL_STOP is set. */
  run(): void;
  /** The worker's endpoint table (for tests). */
  readonly endpoints: LocalEndpoints;
  readonly hold: HoldRing;
}

export function createLoop(cfg: WorkerConfig, deps: LoopDeps): Loop {
  const { nat, counters, ctrl, flows, post } = deps;
  const eps = new LocalEndpoints(cfg.maxEndpoints);
  const holdRing = new HoldRing(eps.held, cfg.holdPackets);
  const log = new DropLog(cfg.index, cfg.logDrops, cfg.hexDump, post);
  /** Fragments and ICMP errors: their datagram table and lookups (src/dataplane/related.ts). */
  const related = flows === null ? null : new Related(flows, counters);
  const udpFd = cfg.udpFd;
  const ep = cfg.epFd;

  // Offloads (cfg.offload): the super-packets of a batch are built behind its slots (src/io/tun.ts).
  const rxBuf = createRxBuffer(cfg.offload);
  // The device (src/io/device.ts): the TUN queues, their offloads and the send tiers, the tier
  // chosen here once. Decapsulated packets go to TUN in one write call per batch, each to its
  // endpoint's gwi- queue (dev.out).
  const dev = new TunDevice(nat, {
    rawFd: cfg.rawFd,
    writeBatch: RX_BATCH,
    vnet: cfg.offload,
    tapFd: flows === null ? -1 : cfg.txTapFd,
    tapMac: cfg.txTapMac,
    usoFd: flows === null ? -1 : (cfg.txUsoFd ?? -1),
    coalesceArea: cfg.offload ? { buf: rxBuf, off: RX_COALESCE_OFF, cap: RX_COALESCE_OFF } : undefined,
  });

  const returns = new ReturnPath(dev, dev, counters, flows, related, eps, log, (fd, li, errno) => control.gone(fd, li, errno), cfg.offload);
  const inbound = new InboundPath(cfg, nat, counters, ctrl, flows, related, eps, holdRing, log, post, rxBuf, dev.out, returns);
  const control = new EndpointControl(nat, ep, cfg.index, eps, inbound, ctrl, post, deps.receive);
  inbound.now = returns.now = nowTicks();
  inbound.nowMs = returns.nowMs = control.nowMs = monoMs();

  // ---- the loop --------------------------------------------------------------------------------
  const ready = new Int32Array(256);
  let lastHousekeeping = monoMs();
  // The turn's clock, read through the addon (the same CLOCK_MONOTONIC as monoMs()) into this
  // array: monoMs() is performance.now(), which allocates a little each call (Node's receiver
  // check takes its arguments as an array, and the double comes back boxed): three readings a
  // turn made the worker scavenge every ~15 s at 2,000 packets/s, more often under load (the
  // worker's GC pauses in the latency benchmark: 2-6 ms on average, in the tail). Measured with V8's
  // sampling heap profiler (collected objects included) at 50 kpps: the clock was half of all
  // the worker allocated; at 2,000 packets/s for 30 s, 2 scavenges before and 0 after.
  const clk = new Float64Array(1);

  function turn(timeoutMs = holdRing.busy ? 10 : IDLE_WAIT_MS): void {
    // Sleeps in epoll_wait as soon as nothing is ready. Measured (bench/, fixed 100 kpps):
    // busy-polling 20 or 100 non-blocking epoll_waits before sleeping did not lower the CPU per
    // packet (7.7-8.9 us against 7.8-7.9 us) -- the spin costs what the saved wake-ups would
    // have -- and it burns a CPU when idle, so there is none.
    const n = nat.epollWait(ep, ready, timeoutMs);
    nat.monoInto(clk);
    const nowMs = clk[0]; // monotonic ms (src/base/clock.ts), never the wall clock
    const now = ticksOf(nowMs); // nowTicks() of the same reading
    inbound.now = returns.now = now;
    inbound.nowMs = returns.nowMs = control.nowMs = nowMs;
    counters[C.LOOPS] += 1;
    counters[C.HEARTBEAT_MS] = nowMs;
    control.drain();
    returns.rawOnly = ctrl[CTRL_TX_RAW] !== 0;
    for (let i = 0; i < n; i++) {
      const fd = ready[i];
      if (fd === udpFd) inbound.receive();
      else {
        const li = eps.byFd.get(fd);
        if (li !== undefined) returns.readable(fd, li, TX_ROUNDS * TX_BATCH);
      }
    }
    returns.flush();
    if (holdRing.busy) {
      const expired = holdRing.expire(nowMs, cfg.holdMs);
      if (expired !== 0) {
        counters[Drop.HOLD_TIMEOUT] += expired;
        counters[C.HOLD_NOW] = holdRing.live;
      }
    }
    if (nowMs - lastHousekeeping >= 1000) {
      lastHousekeeping = nowMs;
      control.expire();
      deps.housekeeping?.();
    }
    // The turn's work, from epoll_wait's return: one observation per turn, a few cells written.
    nat.monoInto(clk);
    recordHist(counters, LOOP_HIST, (clk[0] - nowMs) / 1000);
  }

  function run(): void {
    counters[C.UDP_BOUND] = 1;
    counters[C.HEARTBEAT_MS] = monoMs();
    counters[C.HOLD_NOW] = 0;
    counters[C.RX_IN_HAND] = 0;
    counters[C.TX_IN_HAND] = 0;
    post({ t: 'up', index: cfg.index });
    try {
      while (Atomics.load(ctrl, CTRL_STOP) === 0) turn();
    } finally {
      counters[C.UDP_BOUND] = 0;
    }
  }

  return { turn, run, endpoints: eps, hold: holdRing };
}
