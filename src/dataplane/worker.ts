// The data-plane worker: one thread, one packet loop, batch in and batch out.
//
//   UDP 6081 (recvmmsg) -> parse Geneve -> flow table upsert -> write inner packet to gwi-<X>
//   gwi-<X>/gwo-<X> (read) -> flow table lookup -> Geneve + UDP + IPv4 prepended in place
//                           -> raw socket (sendmmsg)
//
// Why one synchronous loop per thread: profiles of this path (PROTOCOL.md section 5) put about
// 90% of the cost in the kernel, so what matters is fewer syscalls and wake-ups per packet:
// whole batches per syscall, no hand-off between threads per packet, and a loop that only sleeps
// (in epoll_wait, at most 100 ms) when there is nothing to do. The worker never returns to its
// event loop while running; control messages are read synchronously with receiveMessageOnPort
// when the shared sequence word says one is waiting.
//
// Per-packet code below allocates nothing: all buffers are preallocated typed arrays, endpoint
// and fd lookups are keyed by numbers, and counters are `+=` on a shared Float64Array.

import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { native } from '../io/native';
import { parseGeneve, GeneveInfo, GENEVE_PORT } from '../wire/geneve';
import { flowKeyFromIp, KEY_WORDS } from '../wire/flowkey';
import { writeOuterIpUdp, OUTER_HEADER_LEN } from '../wire/outer';
import { Drop, DROP_NAMES } from '../wire/reasons';
import {
  FlowTable,
  FLOW_HEADER_MAX,
  UPSERT_EVICTED,
  UPSERT_HEADER_TOO_LONG,
  UPSERT_INSERTED,
} from '../flow/table';
import { monoMs, nowTicks } from '../flow/clock';
import { installClockStepFromEnv } from '../flow/clock-failpoint';
import { Related, LOOKUP_BAD_QUOTE } from './related';
import { C, EP, EP_STRIDE, GLOBAL_CELLS, workerBlock } from './counters';
import { CTRL_CELLS, CTRL_MSG_SEQ, CTRL_STOP, type FromWorker, type ToWorker, type WorkerConfig } from './messages';

// ---- sizes -------------------------------------------------------------------------------------
/** Datagrams per recvmmsg. 64 measured as good as 256 on 2 cores (PROTOCOL.md section 5). */
const RX_BATCH = 64;
/** A receive slot holds the largest GWLB datagram: 8500 inner + 8 Geneve + 252 options < 9216. */
const RX_SLOT = 9216;
const TX_BATCH = 64;
const TX_SLOT = 9216;
/** Room in front of each packet read from TUN for the outer IPv4+UDP and the stored Geneve
 * header, so encapsulation is done in place, without copying the inner packet. */
const HEADROOM = 96;
/** GWLB drops returned packets whose inner packet exceeds 8500 bytes (PROTOCOL.md section 1). */
const GWLB_INNER_MTU = 8500;
/** How many receive batches one readiness may take before TUN queues get their turn. */
const RX_ROUNDS = 4;
const TX_ROUNDS = 4;
/** Longest sleep: a stop request or control message is noticed within this. */
const IDLE_WAIT_MS = 100;

// ---- endpoint table (worker-local) -------------------------------------------------------------
const ST_FREE = 0;
const ST_PENDING = 1; // main thread told, waiting for 'add' or 'reject'
const ST_READY = 2;
const ST_REJECTED = 3; // over the endpoint limit or creation failed; forgotten after REJECT_MS
const REJECT_MS = 10_000;

installClockStepFromEnv(); // tests only (GWLBTUN_FAILPOINT_CLOCK_STEP)
const cfg = workerData as WorkerConfig;
const port = (workerData as { port: MessagePort }).port;
const nat = native();
const counters = workerBlock(cfg.counterSab, cfg.index, cfg.maxEndpoints);
const ctrl = new Int32Array(cfg.ctrlSab, cfg.index * CTRL_CELLS * 4, CTRL_CELLS);
const flows = cfg.flowSab === null ? null : new FlowTable(cfg.flowSab);
/** Fragments and ICMP errors: their datagram table (per worker) and lookups (src/dataplane/related.ts). */
const related = flows === null ? null : new Related(flows, counters);

// Local endpoint entries: ready endpoints plus ENI IDs waiting for, or refused by, the main thread.
const LOCAL_MAX = cfg.maxEndpoints + 1024;
const lHi = new Uint32Array(LOCAL_MAX);
const lLo = new Uint32Array(LOCAL_MAX);
const lState = new Uint8Array(LOCAL_MAX);
const lFailed = new Uint8Array(LOCAL_MAX);
const lSlot = new Int32Array(LOCAL_MAX).fill(-1);
const lEpId = new Int32Array(LOCAL_MAX);
const lGwi = new Int32Array(LOCAL_MAX).fill(-1);
const lGwo = new Int32Array(LOCAL_MAX).fill(-1);
const lHeld = new Int32Array(LOCAL_MAX);
const lSinceMs = new Float64Array(LOCAL_MAX);
const lNext = new Int32Array(LOCAL_MAX).fill(-1); // chain of entries sharing the low 32 bits
/** Low 32 bits of the ENI ID -> first local entry with them. A number key: no string per packet. */
const byLo = new Map<number, number>();
const freeLocal: number[] = [];
for (let i = LOCAL_MAX - 1; i >= 0; i--) freeLocal.push(i);
const slotLocal = new Int32Array(cfg.maxEndpoints).fill(-1);
const fdOwner = new Map<number, number>(); // TUN fd -> local entry
let lastHi = -1;
let lastLo = -1;
let lastLi = -1;

function findLocal(hi: number, lo: number): number {
  if (hi === lastHi && lo === lastLo) return lastLi;
  let i = byLo.get(lo);
  while (i !== undefined && i >= 0) {
    if (lHi[i] === hi) {
      lastHi = hi;
      lastLo = lo;
      lastLi = i;
      return i;
    }
    i = lNext[i];
  }
  return -1;
}

function addLocal(hi: number, lo: number, state: number, nowMs: number): number {
  const i = freeLocal.pop();
  if (i === undefined) return -1;
  lHi[i] = hi;
  lLo[i] = lo;
  lState[i] = state;
  lFailed[i] = 0;
  lSlot[i] = -1;
  lGwi[i] = -1;
  lGwo[i] = -1;
  lHeld[i] = 0;
  lSinceMs[i] = nowMs;
  const head = byLo.get(lo);
  lNext[i] = head === undefined ? -1 : head;
  byLo.set(lo, i);
  return i;
}

function removeLocal(i: number): void {
  const lo = lLo[i];
  let cur = byLo.get(lo);
  let prev = -1;
  while (cur !== undefined && cur >= 0) {
    if (cur === i) {
      if (prev < 0) {
        if (lNext[i] < 0) byLo.delete(lo);
        else byLo.set(lo, lNext[i]);
      } else lNext[prev] = lNext[i];
      break;
    }
    prev = cur;
    cur = lNext[cur];
  }
  lState[i] = ST_FREE;
  lNext[i] = -1;
  if (lastLi === i) {
    lastHi = -1;
    lastLo = -1;
    lastLi = -1;
  }
  freeLocal.push(i);
}

// ---- counters ----------------------------------------------------------------------------------
function drop(reason: number): void {
  counters[reason] += 1;
}
function dropEp(reason: number, slot: number): void {
  counters[reason] += 1;
  counters[GLOBAL_CELLS + slot * EP_STRIDE + EP.DROPS] += 1;
}

// Dropped-packet log lines (-d / -x): off the fast path unless enabled, and at most
// LOG_PER_SECOND per worker, so a flood of bad packets cannot flood the log.
const LOG_PER_SECOND = 10;
const HEX_DUMP = cfg.hexDump; // a constant for the per-packet checks
let logWindowMs = 0;
let logInWindow = 0;
let logSuppressed = 0;
function logDrop(reason: number, section: string, buf: Uint8Array, off: number, len: number): void {
  if (cfg.logDrops) logPacket(reason, section, buf, off, len);
}
/** -x: a sample of the packets carried, within the same rate limit. */
function logCarried(section: string, buf: Uint8Array, off: number, len: number): void {
  if (cfg.hexDump && logInWindow < LOG_PER_SECOND) logPacket(0, section, buf, off, len);
}
function logPacket(reason: number, section: string, buf: Uint8Array, off: number, len: number): void {
  if (nowMs - logWindowMs >= 1000) {
    logWindowMs = nowMs;
    logInWindow = 0;
  }
  if (logInWindow >= LOG_PER_SECOND) {
    logSuppressed++;
    return;
  }
  logInWindow++;
  let msg =
    reason === 0
      ? `worker ${cfg.index}: ${section === 'geneve' ? 'from GWLB' : 'to GWLB'}: ${len}-byte packet`
      : `worker ${cfg.index}: dropped ${len}-byte packet: ${DROP_NAMES[reason]}`;
  if (logSuppressed > 0) msg += ` (${logSuppressed} similar lines suppressed)`;
  logSuppressed = 0;
  if (cfg.hexDump) msg += '\n' + hexDump(buf, off, Math.min(len, 256));
  post({ t: 'log', index: cfg.index, level: 3, section, msg });
}
function hexDump(buf: Uint8Array, off: number, len: number): string {
  const lines: string[] = [];
  for (let i = 0; i < len; i += 16) {
    const row: string[] = [];
    for (let j = i; j < Math.min(i + 16, len); j++) row.push(buf[off + j].toString(16).padStart(2, '0'));
    lines.push(`  ${i.toString(16).padStart(4, '0')}  ${row.join(' ')}`);
  }
  return lines.join('\n');
}

// ---- receive side ------------------------------------------------------------------------------
const rxBuf = new Uint8Array(RX_BATCH * RX_SLOT);
const rxMeta = new Int32Array(RX_BATCH * 5);
const gi = new GeneveInfo();
const key = new Uint32Array(KEY_WORDS);
// Pending writes to TUN: one tunWrite call per batch, each packet to its endpoint's gwi- queue.
const W_MAX = RX_BATCH;
const wMeta = new Int32Array(W_MAX * 3);
const wSlot = new Int32Array(W_MAX);
let wBuf: Uint8Array = rxBuf;
let wCount = 0;
// Local entries written to since the last drain (deduplicated by a stamp), so that receive() can
// read their gwo- queue right after the writes: see drainTouched().
const touched = new Int32Array(W_MAX);
let touchedN = 0;
const touchStamp = new Uint32Array(LOCAL_MAX);
const touchWritten = new Int32Array(LOCAL_MAX); // packets written to the entry's gwi- since the drain
let stamp = 1;

const allowN = cfg.allow.length >> 1;
const allowNet = new Uint32Array(allowN);
const allowMask = new Uint32Array(allowN);
for (let i = 0; i < allowN; i++) {
  allowNet[i] = cfg.allow[2 * i] >>> 0;
  allowMask[i] = cfg.allow[2 * i + 1] >>> 0;
}
function sourceAllowed(src: number): boolean {
  for (let i = 0; i < allowN; i++) if ((src & allowMask[i]) >>> 0 === allowNet[i]) return true;
  return false;
}

let now = nowTicks();
let nowMs = monoMs(); // monotonic ms (src/flow/clock.ts), never the wall clock

function flushWrites(): void {
  if (wCount === 0) return;
  nat.tunWrite(wBuf, wMeta, wCount);
  for (let i = 0; i < wCount; i++) {
    const len = wMeta[i * 3 + 2];
    const slot = wSlot[i];
    if (len < 0) {
      dropEp(Drop.TUN_WRITE_ERROR, slot);
    } else {
      const e = GLOBAL_CELLS + slot * EP_STRIDE;
      counters[e + EP.RX_PACKETS] += 1;
      counters[e + EP.RX_BYTES] += len;
      counters[e + EP.LAST_RX_MS] = nowMs;
    }
  }
  counters[C.TUN_TX_PACKETS] += wCount;
  wCount = 0;
}

/** One datagram from GWLB (or from the hold queue, once its endpoint exists). */
function inbound(buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number): void {
  if (allowN !== 0 && !sourceAllowed(src)) {
    drop(Drop.SOURCE_NOT_ALLOWED);
    return;
  }
  const r = parseGeneve(buf, off, len, gi);
  if (r !== 0) {
    drop(r);
    logDrop(r, 'geneve', buf, off, len);
    return;
  }
  // The flow key is read before the endpoint is looked up, so that a packet whose inner headers
  // are cut short (TCP/UDP without room for its ports) is dropped here and can never create an
  // endpoint; deliver() uses the key as it is.
  if (!flowKeyFromIp(buf, off + gi.headerLen, gi.innerLen, key)) {
    drop(Drop.INNER_TRUNCATED);
    logDrop(Drop.INNER_TRUNCATED, 'geneve', buf, off, len);
    return;
  }
  let li = findLocal(gi.eniHi, gi.eniLo);
  if (li < 0) {
    li = addLocal(gi.eniHi, gi.eniLo, ST_PENDING, nowMs);
    if (li < 0) {
      drop(Drop.PENDING_TABLE_FULL);
      return;
    }
    post({ t: 'new', index: cfg.index, hi: gi.eniHi, lo: gi.eniLo });
  }
  const st = lState[li];
  if (st === ST_READY) {
    deliver(buf, off, src, dst, sport, li);
  } else if (st === ST_PENDING) {
    hold(buf, off, len, src, dst, sport, li);
  } else {
    drop(lFailed[li] !== 0 ? Drop.ENDPOINT_FAILED : Drop.ENDPOINT_LIMIT);
  }
}

function deliver(buf: Uint8Array, off: number, src: number, dst: number, sport: number, li: number): void {
  const slot = lSlot[li];
  const innerOff = off + gi.headerLen;
  if (flows !== null) {
    key[0] = lEpId[li]; // key[1..10] were read by inbound()
    // Fragments: also the 5-tuple of a first fragment, or the datagram of a reordered later one.
    if (key[10] === 0) related!.inbound(buf, innerOff, gi.innerLen, key, off, gi.headerLen, src, dst, sport, now);
    // Every inbound packet refreshes the stored header: GWLB issues a new cookie when a
    // 5-tuple is reused as a new flow (PROTOCOL.md section 1).
    const u = flows.upsert(key, buf, off, gi.headerLen, src, dst, sport, now);
    if (u === UPSERT_INSERTED) counters[C.FLOW_INSERTS] += 1;
    else if (u === UPSERT_EVICTED) {
      counters[C.FLOW_INSERTS] += 1;
      counters[C.FLOW_EVICTIONS] += 1;
    } else if (u === UPSERT_HEADER_TOO_LONG) {
      // Its returns could not be sent back (the table removed the flow's old header): dropped
      // here, counted once (docs/security.md, "stored Geneve header").
      dropEp(Drop.FLOW_HEADER_TOO_LONG, slot);
      logDrop(Drop.FLOW_HEADER_TOO_LONG, 'geneve', buf, off, gi.headerLen + gi.innerLen);
      return;
    } else counters[C.FLOW_REFRESHES] += 1;
  }
  if (HEX_DUMP) logCarried('geneve', buf, off, gi.headerLen + gi.innerLen);
  if (wCount !== 0 && wBuf !== buf) flushWrites();
  wBuf = buf;
  wMeta[wCount * 3] = lGwi[li];
  wMeta[wCount * 3 + 1] = innerOff;
  wMeta[wCount * 3 + 2] = gi.innerLen;
  wSlot[wCount] = slot;
  if (touchStamp[li] !== stamp && touchedN < W_MAX) {
    touchStamp[li] = stamp;
    touchWritten[li] = 0;
    touched[touchedN++] = li;
  }
  touchWritten[li]++;
  if (++wCount === W_MAX) flushWrites();
}

/** Read back, right now, the gwo- queues of the endpoints just written to.
 *
 * Measured (bench/, 100-byte packets, 64 flows, 1 worker): a TUN write runs the kernel's
 * forwarding synchronously, so the forwarded packets are already queued on gwo- when write()
 * returns. Reading them here instead of in the next loop iteration saves an epoll_wait per batch
 * and, more importantly, bounds what sits in the gwo- queue to one batch: before, a loop iteration
 * that saw only the UDP socket ready wrote up to RX_ROUNDS * 64 packets, the next one the same
 * again before reaching gwo-, and the kernel's TUN queue (txqueuelen 500) overflowed: 58-75 lost
 * of 500,000 at a fixed 100 kpps, all counted as gwo- tx drops. With more than one worker the
 * kernel may queue a flow's returns on another worker's queue; the read here then finds nothing
 * (one EAGAIN read per batch), and that worker reads it in its own loop. */
function drainTouched(rawFd: number): void {
  for (let k = 0; k < touchedN; k++) {
    const li = touched[k];
    const fd = lGwo[li];
    // One worker: read at most as many as were just written. In one-arm mode that is exactly what
    // is waiting, so the read loop ends without the read() that would only return EAGAIN
    // (measured at a fixed 100 kpps: 1.11 -> 1.00 reads per packet); anything beyond stays
    // readable for epoll. Several workers: the kernel also queues the other workers' returns on
    // our queue, so drain it whole; reading only our own count left theirs to pile up while we
    // were busy receiving, and at 140-160 kpps with 2 workers the queue (500) overflowed.
    const limit = cfg.workers > 1 ? TX_ROUNDS * TX_BATCH : touchWritten[li];
    if (fd >= 0 && lState[li] === ST_READY && fdOwner.get(fd) === li) tunReadable(fd, li, rawFd, limit);
  }
  touchedN = 0;
  stamp = (stamp + 1) >>> 0 || 1;
}

function receive(fd: number, rawFd: number): void {
  for (let round = 0; round < RX_ROUNDS; round++) {
    const n = nat.udpRecv(fd, rxBuf, RX_SLOT, RX_BATCH, rxMeta);
    if (n <= 0) break;
    counters[C.UDP_RX_BATCHES] += 1;
    counters[C.UDP_RX_PACKETS] += n;
    // The batch in hand: if this thread dies before it is written, the main thread counts it
    // as lost (worker_died). An upper bound: part of it may have been written already.
    counters[C.RX_IN_HAND] = n;
    if (cfg.failAfter >= 0 && counters[C.UDP_RX_PACKETS] >= cfg.failAfter) failpoint();
    for (let i = 0; i < n; i++) {
      const m = i * 5;
      const len = rxMeta[m];
      counters[C.UDP_RX_BYTES] += len;
      if ((rxMeta[m + 4] & 1) !== 0) {
        drop(Drop.UDP_TRUNCATED);
        continue;
      }
      // Addresses stay int32 (as the native layer stores them), not `>>> 0`: 198.18.x.x as a
      // uint32 is above 2^31, not a small integer, and every call that is not inlined boxed it
      // into a new heap number (measured with --trace-gc: a scavenge every ~225 ms at 140 kpps,
      // about 60 bytes allocated per packet). Everything downstream compares them with `| 0` or
      // `>>> 0` itself.
      inbound(rxBuf, i * RX_SLOT, len, rxMeta[m + 1], rxMeta[m + 3], rxMeta[m + 2]);
    }
    flushWrites();
    counters[C.RX_IN_HAND] = 0;
    drainTouched(rawFd);
    if (n < RX_BATCH) break;
  }
}

// ---- hold queue: packets of an endpoint whose CREATE hook has not finished -------------------
// A FIFO of entries over a ring of bytes. Entries leave from the head when delivered (after the
// endpoint's 'add'), dropped (reject) or expired (older than holdMs); space is reclaimed when the
// head moves. Bounded: HOLD_ENTRIES packets, HOLD_BYTES bytes, cfg.holdPackets per endpoint.
const HOLD_ENTRIES = 4096;
const HOLD_BYTES = 8 * 1024 * 1024;
const holdArena = new Uint8Array(HOLD_BYTES);
const hOff = new Int32Array(HOLD_ENTRIES);
const hLen = new Int32Array(HOLD_ENTRIES);
const hSrc = new Uint32Array(HOLD_ENTRIES);
const hDst = new Uint32Array(HOLD_ENTRIES);
const hPort = new Int32Array(HOLD_ENTRIES);
const hLi = new Int32Array(HOLD_ENTRIES); // -1 once delivered or dropped
const hMs = new Float64Array(HOLD_ENTRIES);
let hHead = 0; // oldest entry
let hCount = 0;
let hTail = 0; // next free byte in the arena

function holdAlloc(len: number): number {
  if (hCount === 0) {
    hTail = 0;
    return len <= HOLD_BYTES ? 0 : -1;
  }
  const headOff = hOff[hHead];
  if (hTail >= headOff) {
    if (hTail + len <= HOLD_BYTES) return hTail;
    if (len < headOff) return 0; // wrap
    return -1;
  }
  return hTail + len < headOff ? hTail : -1;
}

function hold(buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number, li: number): void {
  if (lHeld[li] >= cfg.holdPackets || hCount === HOLD_ENTRIES) {
    drop(Drop.HOLD_FULL);
    return;
  }
  const at = holdAlloc(len);
  if (at < 0) {
    drop(Drop.HOLD_FULL);
    return;
  }
  holdArena.set(buf.subarray(off, off + len), at);
  hTail = at + len;
  const e = (hHead + hCount) % HOLD_ENTRIES;
  hOff[e] = at;
  hLen[e] = len;
  hSrc[e] = src;
  hDst[e] = dst;
  hPort[e] = sport;
  hLi[e] = li;
  hMs[e] = nowMs;
  hCount++;
  lHeld[li]++;
  counters[C.HOLD_QUEUED] += 1;
  counters[C.HOLD_NOW] += 1;
}

function holdAdvance(): void {
  while (hCount > 0 && hLi[hHead] < 0) {
    hHead = (hHead + 1) % HOLD_ENTRIES;
    hCount--;
  }
}

/** Deliver (ready) or drop (rejected) every held packet of local entry li, in arrival order. */
function holdRelease(li: number, deliverThem: boolean, reason: number): void {
  if (lHeld[li] === 0) return;
  flushWrites();
  for (let k = 0; k < hCount; k++) {
    const e = (hHead + k) % HOLD_ENTRIES;
    if (hLi[e] !== li) continue;
    hLi[e] = -1;
    counters[C.HOLD_NOW] -= 1;
    if (deliverThem) {
      counters[C.HOLD_DELIVERED] += 1;
      inbound(holdArena, hOff[e], hLen[e], hSrc[e], hDst[e], hPort[e]);
    } else drop(reason);
  }
  flushWrites();
  lHeld[li] = 0;
  holdAdvance();
}

function holdExpire(): void {
  while (hCount > 0) {
    const e = hHead;
    const li = hLi[e];
    if (li >= 0) {
      if (nowMs - hMs[e] < cfg.holdMs) break;
      drop(Drop.HOLD_TIMEOUT);
      counters[C.HOLD_NOW] -= 1;
      lHeld[li]--;
      hLi[e] = -1;
    }
    hHead = (hHead + 1) % HOLD_ENTRIES;
    hCount--;
  }
}

// ---- return side -------------------------------------------------------------------------------
const txBuf = new Uint8Array(TX_BATCH * TX_SLOT);
const txLens = new Int32Array(TX_BATCH);
const sMeta = new Int32Array(TX_BATCH * 3);
const sSlot = new Int32Array(TX_BATCH);
const sLen = new Int32Array(TX_BATCH);
const sendStatus = new Int32Array(TX_BATCH);
let txUsed = 0; // TX slots filled by TUN reads since the last send
let sCount = 0; // packets ready to send

function flushSends(rawFd: number): void {
  if (sCount !== 0) {
    // A datagram refused alone costs only itself (RAW_SEND_ERROR); a full send queue stops the
    // batch and the rest counts as RAW_SEND_BUSY (see rawSend in src/io/native.ts).
    const done = nat.rawSend(rawFd, txBuf, sMeta, sCount, sendStatus);
    let sent = 0;
    for (let i = 0; i < sCount; i++) {
      const slot = sSlot[i];
      if (i < done && sendStatus[i] === 0) {
        const e = GLOBAL_CELLS + slot * EP_STRIDE;
        counters[e + EP.TX_PACKETS] += 1;
        counters[e + EP.TX_BYTES] += sLen[i];
        counters[e + EP.LAST_TX_MS] = nowMs;
        counters[C.RAW_TX_BYTES] += sMeta[i * 3 + 1];
        sent++;
      } else dropEp(i < done ? Drop.RAW_SEND_ERROR : Drop.RAW_SEND_BUSY, slot);
    }
    counters[C.RAW_TX_PACKETS] += sent;
    counters[C.TX_IN_HAND] = 0;
  }
  sCount = 0;
  txUsed = 0;
}

/** Encapsulate the packet in TX slot `t` (read from a TUN queue of local entry li) in place. */
function returnOne(t: number, li: number): void {
  const slot = lSlot[li];
  const base = t * TX_SLOT + HEADROOM;
  const len = txLens[t];
  if (flows === null) {
    dropEp(Drop.NO_FLOW, slot);
    return;
  }
  if (len > GWLB_INNER_MTU) {
    dropEp(Drop.RETURN_TOO_BIG, slot);
    return;
  }
  if (!flowKeyFromIp(txBuf, base, len, key)) {
    dropEp(Drop.RETURN_MALFORMED, slot);
    return;
  }
  key[0] = lEpId[li];
  // No ports: maybe a fragment or an ICMP error, matched through its datagram or its quote.
  const h = key[10] !== 0 ? flows.lookupInto(key, txBuf, base, now) : related!.lookupPortless(txBuf, base, len, key, now);
  if (h < 0) {
    // Only on a miss: tell the kernel's own IPv6 link-local chatter apart from real strays.
    const reason = h === LOOKUP_BAD_QUOTE ? Drop.ICMP_QUOTE_MALFORMED : isLinkLocal6(key) ? Drop.LINK_LOCAL : Drop.NO_FLOW;
    dropEp(reason, slot);
    logDrop(reason, 'tunnel', txBuf, base, len);
    return;
  }
  const start = base - h - OUTER_HEADER_LEN;
  // Outer addresses swapped: from the address GWLB sent to, to GWLB; UDP source port = the port
  // GWLB used for this flow, destination 6081 (PROTOCOL.md section 2).
  // `| 0`: int32 addresses are small integers; the uint32 ones are not and were boxed into heap
  // numbers when this call was not inlined (see receive()).
  writeOuterIpUdp(txBuf, start, flows.hitLocalIp | 0, flows.hitGwlbIp | 0, flows.hitGwlbPort, GENEVE_PORT, h + len);
  if (HEX_DUMP) logCarried('tunnel', txBuf, start, OUTER_HEADER_LEN + h + len);
  const m = sCount * 3;
  sMeta[m] = start;
  sMeta[m + 1] = OUTER_HEADER_LEN + h + len;
  sMeta[m + 2] = flows.hitGwlbIp | 0;
  sSlot[sCount] = slot;
  sLen[sCount] = len;
  sCount++;
}

/** IPv6 from fe80::/10 or ::, or to ff02::/16 (key words: [1] family|proto, [2..5] src, [6..9] dst). */
function isLinkLocal6(k: Uint32Array): boolean {
  if (k[1] >>> 8 !== 6) return false;
  return k[2] >>> 22 === 0x3fa || k[6] >>> 16 === 0xff02 || (k[2] | k[3] | k[4] | k[5]) === 0;
}

/** Read and return up to `limit` packets from a TUN queue, TX_BATCH slots at a time. */
function tunReadable(fd: number, li: number, rawFd: number, limit: number): void {
  for (let round = 0; round < TX_ROUNDS && limit > 0; round++) {
    const room = TX_BATCH - txUsed;
    const want = room < limit ? room : limit;
    const n = nat.tunRead(fd, txBuf, TX_SLOT, HEADROOM, txUsed, want, txLens);
    if (n < 0) {
      deviceGone(fd, li, -n);
      return;
    }
    if (n === 0) return;
    counters[C.TUN_RX_PACKETS] += n;
    for (let k = 0; k < n; k++) returnOne(txUsed + k, li);
    txUsed += n;
    counters[C.TX_IN_HAND] = sCount;
    limit -= n;
    if (txUsed === TX_BATCH) flushSends(rawFd);
    if (n < want) return;
  }
}

// ---- control -----------------------------------------------------------------------------------
let ep = -1;
let seenSeq = 0;

function post(m: FromWorker): void {
  parentPort!.postMessage(m);
}

function deviceGone(fd: number, li: number, errno: number): void {
  // The interface was deleted under us (or the queue broke). Stop polling it and let the main
  // thread tear the endpoint down; it will be re-created on its next packet.
  nat.epollDel(ep, fd);
  fdOwner.delete(fd);
  if (lState[li] === ST_READY) post({ t: 'gone', index: cfg.index, slot: lSlot[li], errno });
}

function handle(m: ToWorker): void {
  if (m.t === 'add') {
    let li = findLocal(m.hi, m.lo);
    if (li >= 0 && lState[li] === ST_READY && lGwi[li] === m.gwi) return; // already have it
    if (li < 0) li = addLocal(m.hi, m.lo, ST_READY, nowMs);
    if (li < 0) return; // cannot happen: LOCAL_MAX > maxEndpoints
    lState[li] = ST_READY;
    lSlot[li] = m.slot;
    lEpId[li] = m.epId;
    lGwi[li] = m.gwi;
    lGwo[li] = m.gwo;
    slotLocal[m.slot] = li;
    nat.epollAdd(ep, m.gwi);
    fdOwner.set(m.gwi, li);
    if (m.gwo >= 0) {
      nat.epollAdd(ep, m.gwo);
      fdOwner.set(m.gwo, li);
    }
    holdRelease(li, true, 0);
  } else if (m.t === 'reject') {
    let li = findLocal(m.hi, m.lo);
    if (li < 0) li = addLocal(m.hi, m.lo, ST_REJECTED, nowMs);
    if (li < 0) return;
    lState[li] = ST_REJECTED;
    lFailed[li] = m.failed ? 1 : 0;
    lSinceMs[li] = nowMs;
    holdRelease(li, false, m.failed ? Drop.ENDPOINT_FAILED : Drop.ENDPOINT_LIMIT);
  } else if (m.t === 'remove') {
    const li = slotLocal[m.slot];
    if (li >= 0) {
      flushWrites();
      for (const fd of [lGwi[li], lGwo[li]]) {
        if (fd >= 0 && fdOwner.get(fd) === li) {
          nat.epollDel(ep, fd);
          fdOwner.delete(fd);
        }
      }
      slotLocal[m.slot] = -1;
      removeLocal(li);
    }
    post({ t: 'removed', index: cfg.index, epId: m.epId });
  }
}

function drainControl(): void {
  const seq = Atomics.load(ctrl, CTRL_MSG_SEQ);
  if (seq === seenSeq) return;
  seenSeq = seq;
  for (;;) {
    const r = receiveMessageOnPort(port);
    if (r === undefined) break;
    handle(r.message as ToWorker);
  }
}

/** Forget refusals after a while, so an ENI refused at the limit is asked about again. */
function housekeeping(): void {
  for (let i = 0; i < LOCAL_MAX; i++) {
    if (lState[i] === ST_REJECTED && nowMs - lSinceMs[i] > REJECT_MS && lHeld[i] === 0) removeLocal(i);
  }
}

/** Test fault injection (GWLBTUN_FAILPOINT): die, or hang without turning the loop (bounded). */
function failpoint(): void {
  if (cfg.failKind === 'crash') throw new Error('failpoint: worker-crash');
  const until = monoMs() + 60_000;
  while (monoMs() < until) {
    // wedged: no heartbeat, no control messages, until terminated
  }
}

function run(): void {
  if (cfg.startDelayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, cfg.startDelayMs);
  if (cfg.cpus !== null && cfg.cpus.length > 0) nat.setAffinity(cfg.cpus);
  // The sockets and the epoll set were opened by the main thread, which owns them (see
  // WorkerConfig): it closes them when this thread exits, even if it never reaches a finally.
  const udpFd = cfg.udpFd;
  const rawFd = cfg.rawFd;
  ep = cfg.epFd;
  counters[C.UDP_BOUND] = 1;
  counters[C.HEARTBEAT_MS] = monoMs();
  counters[C.HOLD_NOW] = 0;
  counters[C.RX_IN_HAND] = 0;
  counters[C.TX_IN_HAND] = 0;
  post({ t: 'up', index: cfg.index });
  const ready = new Int32Array(256);
  let lastHousekeeping = monoMs();
  try {
    while (Atomics.load(ctrl, CTRL_STOP) === 0) {
      // Sleeps in epoll_wait as soon as nothing is ready. Measured (bench/, fixed 100 kpps):
      // busy-polling 20 or 100 non-blocking epoll_waits before sleeping did not lower the CPU
      // per packet (7.7-8.9 us against 7.8-7.9 us) -- the spin costs what the saved wake-ups
      // would have -- and it burns a CPU when idle, so there is none.
      const n = nat.epollWait(ep, ready, hCount !== 0 ? 10 : IDLE_WAIT_MS);
      now = nowTicks();
      nowMs = monoMs();
      counters[C.LOOPS] += 1;
      counters[C.HEARTBEAT_MS] = nowMs;
      drainControl();
      for (let i = 0; i < n; i++) {
        const fd = ready[i];
        if (fd === udpFd) receive(fd, rawFd);
        else {
          const li = fdOwner.get(fd);
          if (li !== undefined) tunReadable(fd, li, rawFd, TX_ROUNDS * TX_BATCH);
        }
      }
      flushSends(rawFd);
      if (hCount !== 0) holdExpire();
      if (nowMs - lastHousekeeping >= 1000) {
        lastHousekeeping = nowMs;
        housekeeping();
      }
    }
  } finally {
    counters[C.UDP_BOUND] = 0;
  }
}

void FLOW_HEADER_MAX; // HEADROOM above must hold OUTER_HEADER_LEN + FLOW_HEADER_MAX (28 + 60)
if (HEADROOM < OUTER_HEADER_LEN + FLOW_HEADER_MAX) throw new Error('HEADROOM too small');
run();
