// The inbound path of a worker: datagrams from GWLB on UDP 6081, a batch at a time, to the gwi-
// queue of their endpoint (the device's write side, src/io/device.ts):
//
//   recvmmsg -> source allow-list -> parse Geneve -> flow key -> endpoint (or: ask the main thread,
//   hold the packet) -> flow table upsert -> TunWriter (one write call per batch) -> read back the
//   gwo- queues just written to (the return path, src/dataplane/returns.ts)
//
// Contract: receive() takes up to RX_ROUNDS batches from the socket; every datagram is written to
// TUN, held for its endpoint, or counted under one drop reason. release() hands an endpoint's held
// packets on (delivered or dropped) once the endpoint control (src/dataplane/epcontrol.ts) knows
// its fate. The loop sets `now` (flow ticks) and `nowMs` (monotonic ms) once per turn.
//
// Per-packet code allocates nothing: preallocated typed arrays, number-keyed maps, counters are
// `+=` on a Float64Array. Constants used per packet are module-level copies, not imported
// bindings: the compiled CommonJS would read an imported one as a property of the module object.

import type { NativeAddon } from '../io/native';
import { UDP_FLAG_TRUNCATED, UDP_META_DST, UDP_META_FLAGS, UDP_META_LEN, UDP_META_SPORT, UDP_META_SRC, UDP_META_STRIDE } from '../io/native';
import type { TunWriter } from '../io/tun';
import { parseGeneve, GeneveInfo } from '../wire/geneve';
import { flowKeyFromIp, KEY_WORDS } from '../wire/flowkey';
import { Drop } from '../wire/reasons';
import { RX_SLOT as SIZES_RX_SLOT } from '../wire/sizes';
import { UPSERT_EVICTED, UPSERT_HEADER_TOO_LONG, UPSERT_INSERTED, type FlowTable } from '../flow/table';
import { monoMs } from '../base/clock';
import type { Related } from './related';
import { TX_BATCH, TX_ROUNDS, type ReturnPath } from './returns';
import { C, EP, EP_STRIDE, GLOBAL_CELLS, countEpDrop } from './counters';
import { CTRL_GWLB_IP, type FromWorker, type WorkerConfig } from './messages';
import { REJECT_REASONS, ST_PENDING, ST_READY, type LocalEndpoints } from './endpoints';
import type { HoldRing } from './hold';
import type { DropLog } from './droplog';

// ---- sizes -------------------------------------------------------------------------------------
/** Datagrams per recvmmsg. 64 measured as good as 256 on 2 cores (docs/protocol.md section 5). */
export const RX_BATCH = 64;
/** Bytes per receive slot (src/wire/sizes.ts): the largest GWLB datagram fits. */
const RX_SLOT = SIZES_RX_SLOT;
/** How many receive batches one readiness may take before TUN queues get their turn. */
const RX_ROUNDS = 4;
// Metadata layouts (src/io/native.ts), as module-level constants for the per-packet code.
const U_STRIDE = UDP_META_STRIDE;
const U_LEN = UDP_META_LEN;
const U_SRC = UDP_META_SRC;
const U_SPORT = UDP_META_SPORT;
const U_DST = UDP_META_DST;
const U_FLAGS = UDP_META_FLAGS;
const U_TRUNC = UDP_FLAG_TRUNCATED;

/** The receive buffer of a worker: RX_BATCH slots, and with offloads as much again behind them,
 * where the device's writer builds super-packets (src/io/tun.ts). */
export function createRxBuffer(offload: boolean): Uint8Array {
  return new Uint8Array(RX_BATCH * RX_SLOT * (offload ? 2 : 1));
}
/** Where the coalescing area of createRxBuffer(true) starts, and its size. */
export const RX_COALESCE_OFF = RX_BATCH * RX_SLOT;

export class InboundPath {
  /** Flow ticks and monotonic ms of the current turn (set by the loop). */
  now = 0;
  nowMs = 0;
  private readonly rxMeta = new Int32Array(RX_BATCH * U_STRIDE);
  private readonly gi = new GeneveInfo();
  private readonly key = new Uint32Array(KEY_WORDS);
  private readonly allowN: number;
  private readonly allowNet: Uint32Array;
  private readonly allowMask: Uint32Array;
  private readonly hexDump: boolean;
  // Entries written to since the last drain (deduplicated by a stamp), so that receive() can read
  // their gwo- queue right after the writes: see drainTouched().
  private readonly touched = new Int32Array(RX_BATCH);
  private touchedN = 0;
  private readonly touchStamp: Uint32Array;
  private readonly touchWritten: Int32Array; // packets written to the entry's gwi- since the drain
  private stamp = 1;

  // Same-flow runs. Bulk TCP arrives in runs of one flow's segments (a window at a time), each
  // with the same Geneve header; refreshing the flow table with the packet before's key, header,
  // addresses and tick again changes nothing. So a packet that matches the one delivered just
  // before it, in the same receive batch, skips upsert() (a hash, two buckets, a header copy:
  // about 7% of the appliance's CPU under bulk TCP, perf) for a compare of 11 key words and the
  // header bytes. Only packets with ports (fragments and portless protocols take the full path),
  // only from the receive buffer (never the hold ring). A shared table that another worker fills
  // may evict the entry between the two packets: the next batch's first packet inserts it again.
  private readonly runKey = new Uint32Array(KEY_WORDS);
  private runOff = -1; // Geneve header offset in rxBuf of the packet delivered just before, -1: none
  private runLen = 0;
  private runSrc = 0;
  private runDst = 0;
  private runSport = 0;

  // Hold ring release: how a held packet is handed on (bound once, not per call).
  private dropReason = 0;
  private readonly deliverHeld = (buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number): void => {
    this.counters[C.HOLD_DELIVERED] += 1;
    this.inbound(buf, off, len, src, dst, sport);
  };
  private readonly dropHeld = (): void => {
    this.counters[this.dropReason] += 1;
  };

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly nat: NativeAddon,
    private readonly counters: Float64Array,
    private readonly ctrl: Int32Array,
    private readonly flows: FlowTable | null,
    private readonly related: Related | null,
    private readonly eps: LocalEndpoints,
    private readonly holdRing: HoldRing,
    private readonly log: DropLog,
    private readonly post: (m: FromWorker) => void,
    /** The receive buffer (createRxBuffer). */
    private readonly rxBuf: Uint8Array,
    /** The device's write side (gwi- queues). */
    private readonly tunOut: TunWriter,
    /** The return path: the gwo- queues just written to are read back at once. */
    private readonly returns: ReturnPath,
  ) {
    this.hexDump = cfg.hexDump;
    const allowN = (this.allowN = cfg.allow.length >> 1);
    this.allowNet = new Uint32Array(allowN);
    this.allowMask = new Uint32Array(allowN);
    for (let i = 0; i < allowN; i++) {
      this.allowNet[i] = cfg.allow[2 * i] >>> 0;
      this.allowMask[i] = cfg.allow[2 * i + 1] >>> 0;
    }
    this.touchStamp = new Uint32Array(eps.capacity);
    this.touchWritten = new Int32Array(eps.capacity);
  }

  private sourceAllowed(src: number): boolean {
    for (let i = 0; i < this.allowN; i++) if ((src & this.allowMask[i]) >>> 0 === this.allowNet[i]) return true;
    return false;
  }

  private sameAsLast(buf: Uint8Array, off: number, hdrLen: number, src: number, dst: number, sport: number): boolean {
    const key = this.key;
    const runOff = this.runOff;
    if (runOff < 0 || buf !== this.rxBuf || hdrLen !== this.runLen || src !== this.runSrc || dst !== this.runDst || sport !== this.runSport || key[10] === 0) return false;
    const runKey = this.runKey;
    for (let w = 0; w < KEY_WORDS; w++) if (key[w] !== runKey[w]) return false;
    for (let i = 0; i < hdrLen; i++) if (buf[off + i] !== buf[runOff + i]) return false;
    return true;
  }

  /** Write what is queued for gwi- (one call) and count each packet. */
  flushWrites(): void {
    const tunOut = this.tunOut;
    const n = tunOut.count;
    if (n === 0) return;
    this.runOff = -1; // with offloads, write() overwrites the bytes in front of each packet
    tunOut.write();
    const counters = this.counters;
    const wTag = tunOut.tag;
    for (let i = 0; i < n; i++) {
      const len = tunOut.result(i);
      const slot = wTag[i];
      if (len < 0) countEpDrop(counters, Drop.TUN_WRITE_ERROR, slot);
      else {
        const e = GLOBAL_CELLS + slot * EP_STRIDE;
        counters[e + EP.RX_PACKETS] += 1;
        counters[e + EP.RX_BYTES] += len;
        counters[e + EP.LAST_RX_MS] = this.nowMs;
      }
    }
    counters[C.TUN_TX_PACKETS] += n;
    if (this.cfg.offload) {
      counters[C.TUN_COALESCED] += tunOut.coalesced;
      counters[C.TUN_SUPERS_WRITTEN] += tunOut.supers;
      tunOut.coalesced = tunOut.supers = 0;
    }
    tunOut.clear();
  }

  /** One datagram from GWLB (or from the hold ring, once its endpoint exists). */
  inbound(buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number): void {
    const counters = this.counters;
    const gi = this.gi;
    const eps = this.eps;
    if (this.allowN !== 0 && !this.sourceAllowed(src)) {
      counters[Drop.SOURCE_NOT_ALLOWED] += 1;
      return;
    }
    const r = parseGeneve(buf, off, len, gi);
    if (r !== 0) {
      counters[r] += 1;
      this.log.dropped(this.nowMs, r, 'geneve', buf, off, len);
      return;
    }
    // The flow key is read before the endpoint is looked up, so that a packet whose inner headers
    // are cut short (TCP/UDP without room for its ports) is dropped here and can never create an
    // endpoint; deliver() uses the key as it is.
    if (!flowKeyFromIp(buf, off + gi.headerLen, gi.innerLen, this.key)) {
      counters[Drop.INNER_TRUNCATED] += 1;
      this.log.dropped(this.nowMs, Drop.INNER_TRUNCATED, 'geneve', buf, off, len);
      return;
    }
    let li = eps.find(gi.eniHi, gi.eniLo);
    if (li < 0) {
      li = eps.add(gi.eniHi, gi.eniLo, ST_PENDING, this.nowMs);
      if (li < 0) {
        counters[Drop.PENDING_TABLE_FULL] += 1;
        return;
      }
      this.post({ t: 'new', index: this.cfg.index, hi: gi.eniHi, lo: gi.eniLo });
    }
    const st = eps.state[li];
    if (st === ST_READY) this.deliver(buf, off, src, dst, sport, li);
    else if (st === ST_PENDING) {
      if (this.holdRing.add(buf, off, len, src, dst, sport, li, this.nowMs)) {
        counters[C.HOLD_QUEUED] += 1;
        counters[C.HOLD_NOW] = this.holdRing.live;
      } else counters[Drop.HOLD_FULL] += 1;
    } else counters[REJECT_REASONS[eps.failed[li]]] += 1;
  }

  private deliver(buf: Uint8Array, off: number, src: number, dst: number, sport: number, li: number): void {
    const counters = this.counters;
    const gi = this.gi;
    const key = this.key;
    const flows = this.flows;
    const slot = this.eps.slot[li];
    const innerOff = off + gi.headerLen;
    if (flows !== null) {
      key[0] = this.eps.epId[li]; // key[1..10] were read by inbound()
      if (this.sameAsLast(buf, off, gi.headerLen, src, dst, sport)) {
        counters[C.FLOW_REFRESHES] += 1;
        counters[C.FLOW_RUN_SKIPS] += 1;
        this.runOff = off;
      } else {
        // May start a run: from the receive buffer, with ports (see sameAsLast).
        const runs = buf === this.rxBuf && key[10] !== 0;
        this.runOff = -1;
        if (runs) {
          // Copied before upsert(), which rewrites key into its canonical order (a loop: cheaper
          // than TypedArray.prototype.set for 11 words, and this runs for every packet).
          const runKey = this.runKey;
          for (let w = 0; w < KEY_WORDS; w++) runKey[w] = key[w];
          this.runLen = gi.headerLen;
          this.runSrc = src;
          this.runDst = dst;
          this.runSport = sport;
        }
        // Fragments: also the 5-tuple of a first fragment, or the datagram of a reordered later one.
        if (key[10] === 0) this.related!.inbound(buf, innerOff, gi.innerLen, key, off, gi.headerLen, src, dst, sport, this.now);
        // Every inbound packet refreshes the stored header: GWLB issues a new cookie when a
        // 5-tuple is reused as a new flow (docs/protocol.md section 1).
        const u = flows.upsert(key, buf, off, gi.headerLen, src, dst, sport, this.now);
        if (u === UPSERT_INSERTED) {
          counters[C.FLOW_INSERTS] += 1;
          this.ctrl[CTRL_GWLB_IP] = src; // for the egress watch (src/control/egress.ts)
        } else if (u === UPSERT_EVICTED) {
          counters[C.FLOW_INSERTS] += 1;
          this.ctrl[CTRL_GWLB_IP] = src;
          counters[C.FLOW_EVICTIONS] += 1;
        } else if (u === UPSERT_HEADER_TOO_LONG) {
          // Its returns could not be sent back (the table removed the flow's old header): dropped
          // here, counted once (docs/security.md, "stored Geneve header").
          countEpDrop(counters, Drop.FLOW_HEADER_TOO_LONG, slot);
          this.log.dropped(this.nowMs, Drop.FLOW_HEADER_TOO_LONG, 'geneve', buf, off, gi.headerLen + gi.innerLen);
          return;
        } else counters[C.FLOW_REFRESHES] += 1;
        if (runs) this.runOff = off;
      }
    }
    if (this.hexDump) this.log.carried(this.nowMs, 'geneve', buf, off, gi.headerLen + gi.innerLen);
    const tunOut = this.tunOut;
    if (!tunOut.accepts(buf)) this.flushWrites();
    if (this.touchStamp[li] !== this.stamp && this.touchedN < RX_BATCH) {
      this.touchStamp[li] = this.stamp;
      this.touchWritten[li] = 0;
      this.touched[this.touchedN++] = li;
    }
    this.touchWritten[li]++;
    if (tunOut.push(this.eps.gwi[li], buf, innerOff, gi.innerLen, slot)) this.flushWrites();
  }

  /** Read back, right now, the gwo- queues of the endpoints just written to.
   *
   * Measured (bench/, 100-byte packets, 64 flows, 1 worker): a TUN write runs the kernel's
   * forwarding synchronously, so the forwarded packets are already queued on gwo- when write()
   * returns. Reading them here instead of in the next loop iteration saves an epoll_wait per batch
   * and bounds what sits in the gwo- queue to one batch (before, the kernel's 500-packet TUN queue
   * overflowed at a fixed 100 kpps). With more than one worker the kernel may queue a flow's
   * returns on another worker's queue; the read here then finds nothing, and that worker reads it
   * in its own loop. */
  private drainTouched(): void {
    const eps = this.eps;
    for (let k = 0; k < this.touchedN; k++) {
      const li = this.touched[k];
      const fd = eps.gwo[li];
      // One worker: read at most as many packets as were just written. In one-arm mode that is
      // exactly what is waiting, so the read loop ends without the read() that would only return
      // EAGAIN (measured at a fixed 100 kpps: 1.11 -> 1.00 reads per packet); anything beyond
      // stays readable for epoll. The limit counts packets, not reads (src/io/tun.ts), so it
      // still holds when one read returns several. Several workers: the kernel also queues the
      // other workers' returns on our queue, so drain it whole; reading only our own count left
      // theirs to pile up (at 140-160 kpps with 2 workers the queue overflowed).
      const limit = this.cfg.workers > 1 ? TX_ROUNDS * TX_BATCH : this.touchWritten[li];
      if (fd >= 0 && eps.state[li] === ST_READY && eps.byFd.get(fd) === li) this.returns.readable(fd, li, limit);
    }
    this.touchedN = 0;
    this.stamp = (this.stamp + 1) >>> 0 || 1;
  }

  /** Up to RX_ROUNDS batches from the UDP socket, each written to TUN and its returns read back. */
  receive(): void {
    const counters = this.counters;
    const rxMeta = this.rxMeta;
    const rxBuf = this.rxBuf;
    const cfg = this.cfg;
    for (let round = 0; round < RX_ROUNDS; round++) {
      const n = this.nat.udpRecv(cfg.udpFd, rxBuf, RX_SLOT, RX_BATCH, rxMeta);
      if (n <= 0) break;
      counters[C.UDP_RX_BATCHES] += 1;
      counters[C.UDP_RX_PACKETS] += n;
      // The batch in hand: if this thread dies before it is written, the main thread counts it
      // as lost (worker_died). An upper bound: part of it may have been written already.
      counters[C.RX_IN_HAND] = n;
      if (cfg.failAfter >= 0 && counters[C.UDP_RX_PACKETS] >= cfg.failAfter) failpoint(cfg.failKind);
      this.runOff = -1; // the slots are about to be overwritten
      for (let i = 0; i < n; i++) {
        const m = i * U_STRIDE;
        const len = rxMeta[m + U_LEN];
        counters[C.UDP_RX_BYTES] += len;
        if ((rxMeta[m + U_FLAGS] & U_TRUNC) !== 0) {
          counters[Drop.UDP_TRUNCATED] += 1;
          continue;
        }
        // Addresses stay int32 (as the native layer stores them), not `>>> 0`: 198.18.x.x as a
        // uint32 is above 2^31, not a small integer, and every call that is not inlined boxed it
        // into a new heap number (measured with --trace-gc: a scavenge every ~225 ms at 140 kpps,
        // about 60 bytes allocated per packet). Everything downstream compares them with `| 0` or
        // `>>> 0` itself.
        this.inbound(rxBuf, i * RX_SLOT, len, rxMeta[m + U_SRC], rxMeta[m + U_DST], rxMeta[m + U_SPORT]);
      }
      this.flushWrites();
      counters[C.RX_IN_HAND] = 0;
      this.drainTouched();
      if (n < RX_BATCH) break;
    }
  }

  /** The held packets of entry li (an endpoint whose CREATE hook has finished): delivered, or
   * dropped for `reason`. */
  release(li: number, deliverThem: boolean, reason: number): void {
    if (this.eps.held[li] === 0) return;
    this.flushWrites();
    this.dropReason = reason;
    this.holdRing.release(li, deliverThem ? this.deliverHeld : this.dropHeld);
    this.counters[C.HOLD_NOW] = this.holdRing.live;
    this.flushWrites();
  }
}

/** Test fault injection (GWLBTUN_FAILPOINT): die, or hang without turning the loop (bounded). */
function failpoint(kind: WorkerConfig['failKind']): void {
  if (kind === 'crash') throw new Error('failpoint: worker-crash');
  const until = monoMs() + 60_000;
  while (monoMs() < until) {
    // wedged: no heartbeat, no control messages, until terminated
  }
}
