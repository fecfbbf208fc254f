// Counters live in one SharedArrayBuffer of Float64 cells: each worker owns a block and is its
// only writer, so a counter update is a plain `+=` on a typed array (no atomics, no message),
// and the main thread sums the blocks whenever it is asked (health, /metrics, the demo).
// Float64 counts exactly up to 2^53; an aligned 8-byte store is not torn on the 64-bit
// machines we run on, so a reader sees the old or the new value.
//
// Block layout (cells):  [0, DROP_SLOTS)                drops by reason (src/wire/reasons.ts)
//                        [DROP_SLOTS, GLOBAL_CELLS)      the named counters in C below, then two
//                                                        histograms (HIST_CELLS each, see "Histograms")
//                        then EP_STRIDE cells per endpoint slot (EP below).

import { DROP_SLOTS } from '../wire/reasons';

/** Worker-wide counters (cell offsets inside a worker block). */
export const C = {
  UDP_RX_PACKETS: DROP_SLOTS + 0,
  UDP_RX_BYTES: DROP_SLOTS + 1,
  UDP_RX_BATCHES: DROP_SLOTS + 2,
  TUN_TX_PACKETS: DROP_SLOTS + 3, // decapsulated packets written to gwi-
  TUN_RX_PACKETS: DROP_SLOTS + 4, // packets read from gwi-/gwo-
  RAW_TX_PACKETS: DROP_SLOTS + 5, // encapsulated packets handed to the raw socket
  RAW_TX_BYTES: DROP_SLOTS + 6,
  FLOW_INSERTS: DROP_SLOTS + 7,
  FLOW_REFRESHES: DROP_SLOTS + 8,
  FLOW_EVICTIONS: DROP_SLOTS + 9,
  HOLD_QUEUED: DROP_SLOTS + 10,
  HOLD_DELIVERED: DROP_SLOTS + 11,
  LOOPS: DROP_SLOTS + 12,
  HEARTBEAT_MS: DROP_SLOTS + 13, // monotonic ms (src/base/clock.ts) of the worker's last loop iteration
  UDP_BOUND: DROP_SLOTS + 14, // 1 while the worker's UDP socket is open
  // Gauges the main thread settles as `worker_died` drops when the worker dies (see
  // Daemon.onWorkerExit): packets held for endpoints being created, the receive batch in hand,
  // and returns read from TUN but not yet sent.
  HOLD_NOW: DROP_SLOTS + 15,
  RX_IN_HAND: DROP_SLOTS + 16,
  TX_IN_HAND: DROP_SLOTS + 17,
  // Fragments and ICMP errors (src/dataplane/related.ts).
  FRAG_TRACKED: DROP_SLOTS + 18, // first fragments whose datagram was recorded (both directions)
  FRAG_BY_DATAGRAM: DROP_SLOTS + 19, // returned fragments matched to the flow of their datagram
  FRAG_BY_PAIR: DROP_SLOTS + 20, // returned fragments of an unknown datagram matched by the address pair
  FRAG_EVICTIONS: DROP_SLOTS + 21, // datagram table entries taken over while still live (a flood)
  ICMP_BY_QUOTE: DROP_SLOTS + 22, // ICMP errors returned with the flow of the packet they quote
  // Offloads (--offload on, src/io/tun.ts): packets from GWLB written inside super-packets, the
  // super-packets; super-packets read from gwi-/gwo-, the segments cut from them.
  TUN_COALESCED: DROP_SLOTS + 23,
  TUN_SUPERS_WRITTEN: DROP_SLOTS + 24,
  TUN_SUPERS_READ: DROP_SLOTS + 25,
  TUN_SEGMENTED: DROP_SLOTS + 26,
  // UDP tunnel GSO (src/io/txtap.ts): super-packets sent whole through the TAP, their
  // segments, and TAP writes that failed (those super-packets were cut and sent here instead).
  TUN_SUPERS_TAPPED: DROP_SLOTS + 27,
  TUN_TAPPED: DROP_SLOTS + 28,
  TUN_TAP_ERRORS: DROP_SLOTS + 29,
  // Flow refreshes skipped because the packet repeated the one before it (same flow, header,
  // addresses and tick: src/dataplane/loop.ts, "Same-flow runs"); also counted in FLOW_REFRESHES.
  FLOW_RUN_SKIPS: DROP_SLOTS + 30,
  // USO (src/io/uso.ts): super-packets cut here for the USO device, the segments that went
  // out in its writes, and writes that failed (the rest of that super-packet went out raw).
  TUN_SUPERS_USO: DROP_SLOTS + 31,
  TUN_USO: DROP_SLOTS + 32,
  TUN_USO_ERRORS: DROP_SLOTS + 33,
  // Super-packets read from gwi-/gwo- with more segments than a return batch (64), whatever the
  // tier: cut in chunks here (raw, USO) or handed whole to the TAP (src/dataplane/returns.ts).
  TUN_SUPERS_LONG: DROP_SLOTS + 34,
} as const;

// ---- Histograms ----------------------------------------------------------------------------------
// Latency histograms a worker keeps in its own block (issue 20), exported by /metrics as Prometheus
// histograms (src/ops/health.ts): how long each loop turn's work took (from epoll_wait's return
// to the turn's end: what a packet arriving meanwhile may wait before it is read), and the
// worker's GC pauses (v8.GCProfiler, drained once a second in the loop's housekeeping:
// src/dataplane/gcpauses.ts). Layout from a histogram's first cell: one cell per bucket of
// HIST_BOUNDS_S plus one for +Inf, each counting the observations that fell in it (not
// cumulative: the reader sums), then the sum of the observations in seconds, then their count.
// The main thread keeps the same layout in an array of its own (src/ops/runtime.ts).

/** Upper bounds of the buckets, seconds (10 us to 1 s). */
export const HIST_BOUNDS_S: readonly number[] = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Cells per histogram: the buckets, +Inf, sum, count. */
export const HIST_CELLS = HIST_BOUNDS_S.length + 3;
/** Where the loop-turn and GC-pause histograms of a worker block start. */
export const LOOP_HIST = DROP_SLOTS + 35;
export const GC_HIST = LOOP_HIST + HIST_CELLS;
export const GLOBAL_CELLS = GC_HIST + HIST_CELLS;

// A module-level copy for the per-turn search (an imported binding would be a property read).
const BOUNDS = Float64Array.from(HIST_BOUNDS_S);
const NB = BOUNDS.length;

/** One observation of `seconds` into the histogram at cell `base` of `c`. No allocation. */
export function recordHist(c: Float64Array, base: number, seconds: number): void {
  let i = 0;
  while (i < NB && !(seconds <= BOUNDS[i])) i++;
  c[base + i] += 1;
  c[base + NB + 1] += seconds;
  c[base + NB + 2] += 1;
}

/** A histogram as /metrics shows it: cumulative counts per bound (the last: +Inf), sum, count. */
export interface HistView {
  cumulative: number[];
  sum: number;
  count: number;
}

/** Reads the histogram at `base` of one or more blocks (summed). */
export function histView(blocks: readonly Float64Array[], base: number): HistView {
  const cumulative: number[] = [];
  let acc = 0;
  for (let i = 0; i <= NB; i++) {
    for (const b of blocks) acc += b[base + i];
    cumulative.push(acc);
  }
  let sum = 0;
  let count = 0;
  for (const b of blocks) {
    sum += b[base + NB + 1];
    count += b[base + NB + 2];
  }
  return { cumulative, sum, count };
}

/** Per-endpoint counters (offsets inside an endpoint's stride). */
export const EP = {
  RX_PACKETS: 0, // from GWLB, delivered to gwi-
  RX_BYTES: 1, // inner bytes
  TX_PACKETS: 2, // back to GWLB
  TX_BYTES: 3, // inner bytes
  LAST_RX_MS: 4, // monotonic ms of the last packet from GWLB
  LAST_TX_MS: 5, // monotonic ms of the last packet back to GWLB
  DROPS: 6, // packets of this endpoint dropped (any reason after the endpoint was known)
} as const;
export const EP_STRIDE = 8;

// ---- write side (a worker, in its own block) ----------------------------------------------------

/** `packets` returned to GWLB for the endpoint in counter slot `slot`: `bytes` inner bytes, and
 * `wireBytes` handed to the kernel with their outer headers (every send tier counts as the raw
 * socket would have: RAW_TX_*). */
export function countReturned(c: Float64Array, slot: number, packets: number, bytes: number, wireBytes: number, nowMs: number): void {
  const e = GLOBAL_CELLS + slot * EP_STRIDE;
  c[e + EP.TX_PACKETS] += packets;
  c[e + EP.TX_BYTES] += bytes;
  c[e + EP.LAST_TX_MS] = nowMs;
  c[C.RAW_TX_PACKETS] += packets;
  c[C.RAW_TX_BYTES] += wireBytes;
}

/** One packet of the endpoint in counter slot `slot` dropped for `reason`. */
export function countEpDrop(c: Float64Array, reason: number, slot: number): void {
  c[reason] += 1;
  c[GLOBAL_CELLS + slot * EP_STRIDE + EP.DROPS] += 1;
}

export function blockCells(maxEndpoints: number): number {
  return GLOBAL_CELLS + maxEndpoints * EP_STRIDE;
}

export function createCountersBuffer(workers: number, maxEndpoints: number): SharedArrayBuffer {
  return new SharedArrayBuffer(workers * blockCells(maxEndpoints) * 8);
}

/** The block one worker writes. */
export function workerBlock(sab: SharedArrayBuffer, worker: number, maxEndpoints: number): Float64Array {
  const cells = blockCells(maxEndpoints);
  return new Float64Array(sab, worker * cells * 8, cells);
}

/** Read side (main thread): sums over workers. */
export class CounterReader {
  private readonly blocks: Float64Array[];
  constructor(sab: SharedArrayBuffer, workers: number, private readonly maxEndpoints: number) {
    this.blocks = [];
    for (let w = 0; w < workers; w++) this.blocks.push(workerBlock(sab, w, maxEndpoints));
  }
  get workers(): number {
    return this.blocks.length;
  }
  /** Sum of one cell over all workers. */
  sum(cell: number): number {
    let s = 0;
    for (const b of this.blocks) s += b[cell];
    return s;
  }
  /** One worker's histogram at `base` (LOOP_HIST, GC_HIST). */
  hist(worker: number, base: number): HistView {
    return histView([this.blocks[worker]], base);
  }
  /** One worker's value of a cell. */
  of(worker: number, cell: number): number {
    return this.blocks[worker][cell];
  }
  epSum(slot: number, k: number): number {
    return this.sum(GLOBAL_CELLS + slot * EP_STRIDE + k);
  }
  epMax(slot: number, k: number): number {
    let m = 0;
    for (const b of this.blocks) m = Math.max(m, b[GLOBAL_CELLS + slot * EP_STRIDE + k]);
    return m;
  }
  /** Count `n` drops for `reason` in a worker's block. Only for a dead worker's block (the main
   * thread settles what it lost): a live worker is the only writer of its own block. */
  addDeadWorkerDrops(worker: number, reason: number, n: number, slot = -1): void {
    const b = this.blocks[worker];
    b[reason] += n;
    if (slot >= 0 && slot < this.maxEndpoints) b[GLOBAL_CELLS + slot * EP_STRIDE + EP.DROPS] += n;
  }
  /** A dead worker's gauges, moved into `reason` and zeroed; returns how many packets they held. */
  settleDeadWorker(worker: number, reason: number): number {
    const b = this.blocks[worker];
    const lost = b[C.HOLD_NOW] + b[C.RX_IN_HAND] + b[C.TX_IN_HAND];
    b[reason] += lost;
    b[C.HOLD_NOW] = 0;
    b[C.RX_IN_HAND] = 0;
    b[C.TX_IN_HAND] = 0;
    return lost;
  }
  /** Zero an endpoint slot's counters in every block (when the slot is reused). Only safe while
   * no worker writes that slot, i.e. after every worker acknowledged the endpoint's removal. */
  resetEndpoint(slot: number): void {
    if (slot >= this.maxEndpoints) return;
    for (const b of this.blocks) b.fill(0, GLOBAL_CELLS + slot * EP_STRIDE, GLOBAL_CELLS + (slot + 1) * EP_STRIDE);
  }
}
