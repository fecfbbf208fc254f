// The data-plane packet loop of one worker: batch in, batch out.
//
//   UDP 6081 (recvmmsg) -> parse Geneve -> flow table upsert -> write inner packet to gwi-<X>
//   gwi-<X>/gwo-<X> (read) -> flow table lookup -> Geneve + UDP + IPv4 prepended in place
//                           -> raw socket (sendmmsg)
//
// Why one synchronous loop per thread: profiles of this path (docs/protocol.md section 5) put
// about 90% of the cost in the kernel, so what matters is fewer syscalls and wake-ups per packet:
// whole batches per syscall, no hand-off between threads per packet, and a loop that only sleeps
// (in epoll_wait, at most 100 ms) when there is nothing to do. Control messages are taken
// between batches, when the shared sequence word says one is waiting.
//
// createLoop() takes everything it touches as arguments (the addon, the counter block, the flow
// table, the message port as two functions), so the same loop runs in a worker thread
// (src/dataplane/worker.ts) and, in unit tests, over the in-memory addon (src/io/fake.ts).
//
// Per-packet code allocates nothing: preallocated typed arrays, number-keyed maps, counters are
// `+=` on a Float64Array. Constants used per packet are module-level copies, not imported
// bindings: the compiled CommonJS would read an imported one as a property of the module object.

import type { NativeAddon } from '../io/native';
import { UDP_FLAG_TRUNCATED, UDP_META_DST, UDP_META_FLAGS, UDP_META_LEN, UDP_META_SPORT, UDP_META_SRC, UDP_META_STRIDE } from '../io/native';
import { TunWriter } from '../io/tun';
import { parseGeneve, GeneveInfo } from '../wire/geneve';
import { flowKeyFromIp, KEY_WORDS } from '../wire/flowkey';
import { Drop } from '../wire/reasons';
import { RX_SLOT as SIZES_RX_SLOT } from '../wire/sizes';
import { FlowTable, UPSERT_EVICTED, UPSERT_HEADER_TOO_LONG, UPSERT_INSERTED } from '../flow/table';
import { monoMs, nowTicks } from '../flow/clock';
import { Related } from './related';
import { ReturnPath, TX_BATCH, TX_ROUNDS } from './returns';
import { C, EP, EP_STRIDE, GLOBAL_CELLS, LOOP_HIST, countEpDrop, recordHist } from './counters';
import { CTRL_GWLB_IP, CTRL_MSG_SEQ, CTRL_STOP, CTRL_TX_RAW, type FromWorker, type ToWorker, type WorkerConfig } from './messages';
import { LocalEndpoints, REJECT_REASONS, ST_PENDING, ST_READY, ST_REJECTED } from './endpoints';
import { HoldRing } from './hold';
import { DropLog } from './droplog';

// ---- sizes -------------------------------------------------------------------------------------
/** Datagrams per recvmmsg. 64 measured as good as 256 on 2 cores (docs/protocol.md section 5). */
export const RX_BATCH = 64;
/** Bytes per receive slot (src/wire/sizes.ts): the largest GWLB datagram fits. */
const RX_SLOT = SIZES_RX_SLOT;
/** How many receive batches one readiness may take before TUN queues get their turn. */
const RX_ROUNDS = 4;
/** Longest sleep: a stop request or control message is noticed within this. */
const IDLE_WAIT_MS = 100;
/** How long an ENI ID refused by the main thread stays refused here before it is asked again. */
const REJECT_MS = 10_000;
// Metadata layouts (src/io/native.ts), as module-level constants for the per-packet code.
const U_STRIDE = UDP_META_STRIDE;
const U_LEN = UDP_META_LEN;
const U_SRC = UDP_META_SRC;
const U_SPORT = UDP_META_SPORT;
const U_DST = UDP_META_DST;
const U_FLAGS = UDP_META_FLAGS;
const U_TRUNC = UDP_FLAG_TRUNCATED;

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
  const lState = eps.state;
  const lSlot = eps.slot;
  const lEpId = eps.epId;
  const lGwi = eps.gwi;
  const lGwo = eps.gwo;
  const fdOwner = eps.byFd;
  const holdRing = new HoldRing(eps.held, cfg.holdPackets);
  const log = new DropLog(cfg.index, cfg.logDrops, cfg.hexDump, post);
  const HEX_DUMP = cfg.hexDump; // a constant for the per-packet checks
  /** Fragments and ICMP errors: their datagram table and lookups (src/dataplane/related.ts). */
  const related = flows === null ? null : new Related(flows, counters);
  const udpFd = cfg.udpFd;
  const ep = cfg.epFd;

  let now = nowTicks();
  let nowMs = monoMs(); // monotonic ms (src/flow/clock.ts), never the wall clock

  const drop = (reason: number): void => {
    counters[reason] += 1;
  };
  const dropEp = (reason: number, slot: number): void => countEpDrop(counters, reason, slot);

  const allowN = cfg.allow.length >> 1;
  const allowNet = new Uint32Array(allowN);
  const allowMask = new Uint32Array(allowN);
  for (let i = 0; i < allowN; i++) {
    allowNet[i] = cfg.allow[2 * i] >>> 0;
    allowMask[i] = cfg.allow[2 * i + 1] >>> 0;
  }
  const sourceAllowed = (src: number): boolean => {
    for (let i = 0; i < allowN; i++) if ((src & allowMask[i]) >>> 0 === allowNet[i]) return true;
    return false;
  };

  // ---- receive side ----------------------------------------------------------------------------
  // Offloads (cfg.offload): the super-packets of a batch are built behind its slots (src/io/tun.ts).
  const rxBuf = new Uint8Array(RX_BATCH * RX_SLOT * (cfg.offload ? 2 : 1));
  const rxMeta = new Int32Array(RX_BATCH * U_STRIDE);
  const gi = new GeneveInfo();
  const key = new Uint32Array(KEY_WORDS);
  // Decapsulated packets go to TUN in one write call per batch, each to its endpoint's gwi- queue.
  const tunOut = new TunWriter(nat, RX_BATCH, cfg.offload);
  if (cfg.offload) tunOut.setCoalesceArea(rxBuf, RX_BATCH * RX_SLOT, RX_BATCH * RX_SLOT);
  const wTag = tunOut.tag;
  // Entries written to since the last drain (deduplicated by a stamp), so that receive() can read
  // their gwo- queue right after the writes: see drainTouched().
  const touched = new Int32Array(RX_BATCH);
  let touchedN = 0;
  const touchStamp = new Uint32Array(eps.capacity);
  const touchWritten = new Int32Array(eps.capacity); // packets written to the entry's gwi- since the drain
  let stamp = 1;

  // Same-flow runs. Bulk TCP arrives in runs of one flow's segments (a window at a time), each
  // with the same Geneve header; refreshing the flow table with the packet before's key, header,
  // addresses and tick again changes nothing. So a packet that matches the one delivered just
  // before it, in the same receive batch, skips upsert() (a hash, two buckets, a header copy:
  // about 7% of the appliance's CPU under bulk TCP, perf) for a compare of 11 key words and the
  // header bytes. Only packets with ports (fragments and portless protocols take the full path),
  // only from the receive buffer (never the hold ring). A shared table that another worker fills
  // may evict the entry between the two packets: the next batch's first packet inserts it again.
  const runKey = new Uint32Array(KEY_WORDS);
  let runOff = -1; // Geneve header offset in rxBuf of the packet delivered just before, -1: none
  let runLen = 0;
  let runSrc = 0;
  let runDst = 0;
  let runSport = 0;

  function sameAsLast(buf: Uint8Array, off: number, hdrLen: number, src: number, dst: number, sport: number): boolean {
    if (runOff < 0 || buf !== rxBuf || hdrLen !== runLen || src !== runSrc || dst !== runDst || sport !== runSport || key[10] === 0) return false;
    for (let w = 0; w < KEY_WORDS; w++) if (key[w] !== runKey[w]) return false;
    for (let i = 0; i < hdrLen; i++) if (buf[off + i] !== buf[runOff + i]) return false;
    return true;
  }

  function flushWrites(): void {
    const n = tunOut.count;
    if (n === 0) return;
    runOff = -1; // with offloads, write() overwrites the bytes in front of each packet
    tunOut.write();
    for (let i = 0; i < n; i++) {
      const len = tunOut.result(i);
      const slot = wTag[i];
      if (len < 0) dropEp(Drop.TUN_WRITE_ERROR, slot);
      else {
        const e = GLOBAL_CELLS + slot * EP_STRIDE;
        counters[e + EP.RX_PACKETS] += 1;
        counters[e + EP.RX_BYTES] += len;
        counters[e + EP.LAST_RX_MS] = nowMs;
      }
    }
    counters[C.TUN_TX_PACKETS] += n;
    if (cfg.offload) {
      counters[C.TUN_COALESCED] += tunOut.coalesced;
      counters[C.TUN_SUPERS_WRITTEN] += tunOut.supers;
      tunOut.coalesced = tunOut.supers = 0;
    }
    tunOut.clear();
  }

  /** One datagram from GWLB (or from the hold ring, once its endpoint exists). */
  function inbound(buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number): void {
    if (allowN !== 0 && !sourceAllowed(src)) {
      drop(Drop.SOURCE_NOT_ALLOWED);
      return;
    }
    const r = parseGeneve(buf, off, len, gi);
    if (r !== 0) {
      drop(r);
      log.dropped(nowMs, r, 'geneve', buf, off, len);
      return;
    }
    // The flow key is read before the endpoint is looked up, so that a packet whose inner headers
    // are cut short (TCP/UDP without room for its ports) is dropped here and can never create an
    // endpoint; deliver() uses the key as it is.
    if (!flowKeyFromIp(buf, off + gi.headerLen, gi.innerLen, key)) {
      drop(Drop.INNER_TRUNCATED);
      log.dropped(nowMs, Drop.INNER_TRUNCATED, 'geneve', buf, off, len);
      return;
    }
    let li = eps.find(gi.eniHi, gi.eniLo);
    if (li < 0) {
      li = eps.add(gi.eniHi, gi.eniLo, ST_PENDING, nowMs);
      if (li < 0) {
        drop(Drop.PENDING_TABLE_FULL);
        return;
      }
      post({ t: 'new', index: cfg.index, hi: gi.eniHi, lo: gi.eniLo });
    }
    const st = lState[li];
    if (st === ST_READY) deliver(buf, off, src, dst, sport, li);
    else if (st === ST_PENDING) {
      if (holdRing.add(buf, off, len, src, dst, sport, li, nowMs)) {
        counters[C.HOLD_QUEUED] += 1;
        counters[C.HOLD_NOW] = holdRing.live;
      } else drop(Drop.HOLD_FULL);
    } else drop(REJECT_REASONS[eps.failed[li]]);
  }

  function deliver(buf: Uint8Array, off: number, src: number, dst: number, sport: number, li: number): void {
    const slot = lSlot[li];
    const innerOff = off + gi.headerLen;
    if (flows !== null) {
      key[0] = lEpId[li]; // key[1..10] were read by inbound()
      if (sameAsLast(buf, off, gi.headerLen, src, dst, sport)) {
        counters[C.FLOW_REFRESHES] += 1;
        counters[C.FLOW_RUN_SKIPS] += 1;
        runOff = off;
      } else {
        // May start a run: from the receive buffer, with ports (see sameAsLast).
        const runs = buf === rxBuf && key[10] !== 0;
        runOff = -1;
        if (runs) {
          // Copied before upsert(), which rewrites key into its canonical order (a loop: cheaper
          // than TypedArray.prototype.set for 11 words, and this runs for every packet).
          for (let w = 0; w < KEY_WORDS; w++) runKey[w] = key[w];
          runLen = gi.headerLen;
          runSrc = src;
          runDst = dst;
          runSport = sport;
        }
        // Fragments: also the 5-tuple of a first fragment, or the datagram of a reordered later one.
        if (key[10] === 0) related!.inbound(buf, innerOff, gi.innerLen, key, off, gi.headerLen, src, dst, sport, now);
        // Every inbound packet refreshes the stored header: GWLB issues a new cookie when a
        // 5-tuple is reused as a new flow (docs/protocol.md section 1).
        const u = flows.upsert(key, buf, off, gi.headerLen, src, dst, sport, now);
        if (u === UPSERT_INSERTED) {
          counters[C.FLOW_INSERTS] += 1;
          ctrl[CTRL_GWLB_IP] = src; // for the egress watch (src/control/egress.ts)
        } else if (u === UPSERT_EVICTED) {
          counters[C.FLOW_INSERTS] += 1;
          ctrl[CTRL_GWLB_IP] = src;
          counters[C.FLOW_EVICTIONS] += 1;
        } else if (u === UPSERT_HEADER_TOO_LONG) {
          // Its returns could not be sent back (the table removed the flow's old header): dropped
          // here, counted once (docs/security.md, "stored Geneve header").
          dropEp(Drop.FLOW_HEADER_TOO_LONG, slot);
          log.dropped(nowMs, Drop.FLOW_HEADER_TOO_LONG, 'geneve', buf, off, gi.headerLen + gi.innerLen);
          return;
        } else counters[C.FLOW_REFRESHES] += 1;
        if (runs) runOff = off;
      }
    }
    if (HEX_DUMP) log.carried(nowMs, 'geneve', buf, off, gi.headerLen + gi.innerLen);
    if (!tunOut.accepts(buf)) flushWrites();
    if (touchStamp[li] !== stamp && touchedN < RX_BATCH) {
      touchStamp[li] = stamp;
      touchWritten[li] = 0;
      touched[touchedN++] = li;
    }
    touchWritten[li]++;
    if (tunOut.push(lGwi[li], buf, innerOff, gi.innerLen, slot)) flushWrites();
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
  function drainTouched(): void {
    for (let k = 0; k < touchedN; k++) {
      const li = touched[k];
      const fd = lGwo[li];
      // One worker: read at most as many packets as were just written. In one-arm mode that is
      // exactly what is waiting, so the read loop ends without the read() that would only return
      // EAGAIN (measured at a fixed 100 kpps: 1.11 -> 1.00 reads per packet); anything beyond
      // stays readable for epoll. The limit counts packets, not reads (src/io/tun.ts), so it
      // still holds when one read returns several. Several workers: the kernel also queues the
      // other workers' returns on our queue, so drain it whole; reading only our own count left
      // theirs to pile up (at 140-160 kpps with 2 workers the queue overflowed).
      const limit = cfg.workers > 1 ? TX_ROUNDS * TX_BATCH : touchWritten[li];
      if (fd >= 0 && lState[li] === ST_READY && fdOwner.get(fd) === li) returns.readable(fd, li, limit);
    }
    touchedN = 0;
    stamp = (stamp + 1) >>> 0 || 1;
  }

  function receive(): void {
    for (let round = 0; round < RX_ROUNDS; round++) {
      const n = nat.udpRecv(udpFd, rxBuf, RX_SLOT, RX_BATCH, rxMeta);
      if (n <= 0) break;
      counters[C.UDP_RX_BATCHES] += 1;
      counters[C.UDP_RX_PACKETS] += n;
      // The batch in hand: if this thread dies before it is written, the main thread counts it
      // as lost (worker_died). An upper bound: part of it may have been written already.
      counters[C.RX_IN_HAND] = n;
      if (cfg.failAfter >= 0 && counters[C.UDP_RX_PACKETS] >= cfg.failAfter) failpoint();
      runOff = -1; // the slots are about to be overwritten
      for (let i = 0; i < n; i++) {
        const m = i * U_STRIDE;
        const len = rxMeta[m + U_LEN];
        counters[C.UDP_RX_BYTES] += len;
        if ((rxMeta[m + U_FLAGS] & U_TRUNC) !== 0) {
          drop(Drop.UDP_TRUNCATED);
          continue;
        }
        // Addresses stay int32 (as the native layer stores them), not `>>> 0`: 198.18.x.x as a
        // uint32 is above 2^31, not a small integer, and every call that is not inlined boxed it
        // into a new heap number (measured with --trace-gc: a scavenge every ~225 ms at 140 kpps,
        // about 60 bytes allocated per packet). Everything downstream compares them with `| 0` or
        // `>>> 0` itself.
        inbound(rxBuf, i * RX_SLOT, len, rxMeta[m + U_SRC], rxMeta[m + U_DST], rxMeta[m + U_SPORT]);
      }
      flushWrites();
      counters[C.RX_IN_HAND] = 0;
      drainTouched();
      if (n < RX_BATCH) break;
    }
  }

  // ---- hold ring: packets of an endpoint whose CREATE hook has not finished --------------------
  let dropReason = 0;
  const deliverHeld = (buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number): void => {
    counters[C.HOLD_DELIVERED] += 1;
    inbound(buf, off, len, src, dst, sport);
  };
  const dropHeld = (): void => drop(dropReason);
  function holdRelease(li: number, deliverThem: boolean, reason: number): void {
    if (eps.held[li] === 0) return;
    flushWrites();
    dropReason = reason;
    holdRing.release(li, deliverThem ? deliverHeld : dropHeld);
    counters[C.HOLD_NOW] = holdRing.live;
    flushWrites();
  }

  // ---- return side (src/dataplane/returns.ts) --------------------------------------------------
  const returns = new ReturnPath(nat, cfg.rawFd, counters, flows, related, eps, log, deviceGone, cfg.offload, cfg.txTapFd, cfg.txTapMac, cfg.txUsoFd ?? -1);

  // ---- control ---------------------------------------------------------------------------------
  let seenSeq = 0;

  function deviceGone(fd: number, li: number, errno: number): void {
    // The interface was deleted under us (or the queue broke). Stop polling it and let the main
    // thread tear the endpoint down; it will be re-created on its next packet.
    nat.epollDel(ep, fd);
    fdOwner.delete(fd);
    if (lState[li] === ST_READY) post({ t: 'gone', index: cfg.index, slot: lSlot[li], errno });
  }

  function handle(m: ToWorker): void {
    if (m.t === 'add') {
      let li = eps.find(m.hi, m.lo);
      if (li >= 0 && lState[li] === ST_READY && lGwi[li] === m.gwi) return; // already have it
      if (li < 0) li = eps.add(m.hi, m.lo, ST_READY, nowMs);
      if (li < 0) return; // cannot happen: the table holds more than maxEndpoints
      lState[li] = ST_READY;
      lSlot[li] = m.slot;
      lEpId[li] = m.epId;
      lGwi[li] = m.gwi;
      lGwo[li] = m.gwo;
      eps.bySlot[m.slot] = li;
      nat.epollAdd(ep, m.gwi);
      fdOwner.set(m.gwi, li);
      if (m.gwo >= 0) {
        nat.epollAdd(ep, m.gwo);
        fdOwner.set(m.gwo, li);
      }
      holdRelease(li, true, 0);
    } else if (m.t === 'reject') {
      let li = eps.find(m.hi, m.lo);
      if (li < 0) li = eps.add(m.hi, m.lo, ST_REJECTED, nowMs);
      if (li < 0) return;
      lState[li] = ST_REJECTED;
      eps.failed[li] = m.unlisted === true ? 2 : m.failed ? 1 : 0;
      eps.sinceMs[li] = nowMs;
      holdRelease(li, false, REJECT_REASONS[eps.failed[li]]);
    } else if (m.t === 'remove') {
      const li = eps.bySlot[m.slot];
      if (li >= 0) {
        flushWrites();
        for (const fd of [lGwi[li], lGwo[li]]) {
          if (fd >= 0 && fdOwner.get(fd) === li) {
            nat.epollDel(ep, fd);
            fdOwner.delete(fd);
          }
        }
        eps.bySlot[m.slot] = -1;
        eps.remove(li);
      }
      post({ t: 'removed', index: cfg.index, epId: m.epId });
    }
  }

  function drainControl(): void {
    const seq = Atomics.load(ctrl, CTRL_MSG_SEQ);
    if (seq === seenSeq) return;
    seenSeq = seq;
    for (let m = deps.receive(); m !== undefined; m = deps.receive()) handle(m);
  }

  /** Forget refusals after a while, so an ENI refused at the limit is asked about again. */
  function housekeeping(): void {
    for (let i = 0; i < eps.capacity; i++) {
      if (lState[i] === ST_REJECTED && nowMs - eps.sinceMs[i] > REJECT_MS && eps.held[i] === 0) eps.remove(i);
    }
    deps.housekeeping?.();
  }

  /** Test fault injection (GWLBTUN_FAILPOINT): die, or hang without turning the loop (bounded). */
  function failpoint(): void {
    if (cfg.failKind === 'crash') throw new Error('failpoint: worker-crash');
    const until = monoMs() + 60_000;
    while (monoMs() < until) {
      // wedged: no heartbeat, no control messages, until terminated
    }
  }

  // ---- the loop --------------------------------------------------------------------------------
  const ready = new Int32Array(256);
  let lastHousekeeping = nowMs;

  function turn(timeoutMs = holdRing.busy ? 10 : IDLE_WAIT_MS): void {
    // Sleeps in epoll_wait as soon as nothing is ready. Measured (bench/, fixed 100 kpps):
    // busy-polling 20 or 100 non-blocking epoll_waits before sleeping did not lower the CPU per
    // packet (7.7-8.9 us against 7.8-7.9 us) -- the spin costs what the saved wake-ups would
    // have -- and it burns a CPU when idle, so there is none.
    const n = nat.epollWait(ep, ready, timeoutMs);
    now = returns.now = nowTicks();
    nowMs = returns.nowMs = monoMs();
    counters[C.LOOPS] += 1;
    counters[C.HEARTBEAT_MS] = nowMs;
    drainControl();
    returns.rawOnly = ctrl[CTRL_TX_RAW] !== 0;
    for (let i = 0; i < n; i++) {
      const fd = ready[i];
      if (fd === udpFd) receive();
      else {
        const li = fdOwner.get(fd);
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
      housekeeping();
    }
    // The turn's work, from epoll_wait's return: one observation per turn, a few cells written.
    recordHist(counters, LOOP_HIST, (monoMs() - nowMs) / 1000);
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
