// The return path of a worker: packets the OS routed out of gwi-<X>/gwo-<X>, read a batch of
// slots at a time, matched to their flow, encapsulated in place and sent back to GWLB.
//
//   TUN queue (TunReader) -> flow key -> flow table lookup (the flow's stored Geneve header is
//   copied in front of the packet) -> outer IPv4 + UDP in the slot's headroom -> sendmmsg
//
// Contract: readable(fd, entry, limit) reads at most `limit` packets from one queue; sends go out
// when the slots are full and when the loop calls flush() at the end of its turn. Every packet
// read is either sent or counted under one drop reason (per endpoint too). The loop sets `now`
// (flow ticks) and `nowMs` (monotonic ms) once per turn. Nothing is allocated per packet.

import type { NativeAddon } from '../io/native';
import { RAW_META_DST, RAW_META_LEN, RAW_META_OFF, RAW_META_STRIDE } from '../io/native';
import { TunReader } from '../io/tun';
import { TX_TAP_HDR } from '../control/txtap';
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_TUNNEL_IPV4, VNET_HDR_LEN, writeVnetHdr } from '../wire/virtio';
import { addrSum, setIpv4Checksum, wr16 } from '../wire/offload-common';
import { fold16 } from '../wire/checksum32';
import { GENEVE_PORT } from '../wire/geneve';
import { flowKeyFromIp, isLinkLocal6, KEY_WORDS } from '../wire/flowkey';
import { writeOuterIpUdp, OUTER_HEADER_LEN } from '../wire/outer';
import { Drop } from '../wire/reasons';
import { RX_SLOT } from '../wire/sizes';
import { FLOW_HEADER_MAX, type FlowTable } from '../flow/table';
import { LOOKUP_BAD_QUOTE, LOOKUP_QUOTE_MISMATCH, type Related } from './related';
import { C, EP, EP_STRIDE, GLOBAL_CELLS, countEpDrop, countReturned } from './counters';
import type { LocalEndpoints } from './endpoints';
import type { DropLog } from './droplog';
import { UsoSender, USO_AREA } from './uso';

/** Slots per batch of returns (one sendmmsg). */
export const TX_BATCH = 64;
/** How many batches one readiness of a queue may take before others get their turn. */
export const TX_ROUNDS = 4;
/** A slot holds the largest packet a TUN read can return (MTU 8500) plus the headroom. */
const TX_SLOT = RX_SLOT;
/** Room in front of each packet read from TUN for the outer IPv4+UDP and the stored Geneve
 * header, so encapsulation is done in place, without copying the inner packet. */
const HEADROOM = 96;
if (HEADROOM < OUTER_HEADER_LEN + FLOW_HEADER_MAX) throw new Error('HEADROOM too small');
/** GWLB drops returned packets whose inner packet exceeds 8500 bytes (docs/protocol.md section 1). */
const GWLB_INNER_MTU = 8500;
const R_STRIDE = RAW_META_STRIDE;
const R_OFF = RAW_META_OFF;
const R_LEN = RAW_META_LEN;
const R_DST = RAW_META_DST;
/** Drop reason of each segmentPacket error (index: -SEG_*, src/wire/segment.ts). A super-packet
 * of more segments than TX_BATCH is cut in chunks (TunReader), never dropped for it. */
const SEG_REASONS = [0, Drop.GSO_MALFORMED, Drop.GSO_UNSUPPORTED, Drop.GSO_TOO_BIG, Drop.GSO_NO_ROOM];

export class ReturnPath {
  /** Flow ticks and monotonic ms of the current turn (set by the loop). */
  now = 0;
  nowMs = 0;
  private readonly tunIn: TunReader;
  private readonly key = new Uint32Array(KEY_WORDS);
  private readonly sMeta = new Int32Array(TX_BATCH * R_STRIDE);
  private readonly sSlot = new Int32Array(TX_BATCH);
  private readonly sLen = new Int32Array(TX_BATCH);
  private readonly status = new Int32Array(TX_BATCH);
  private sCount = 0; // packets ready to send
  private seenSupers = 0;
  private seenSegmented = 0;
  private seenLong = 0;
  /** Offloads: send every return through the raw socket, not the send device (set by the loop
   * once per turn from CTRL_TX_RAW: the egress device towards GWLB would pass the device tier's
   * work on unfinished, src/control/egress.ts). */
  rawOnly = false;

  constructor(
    private readonly nat: NativeAddon,
    private readonly rawFd: number,
    private readonly counters: Float64Array,
    private readonly flows: FlowTable | null,
    private readonly related: Related | null,
    private readonly eps: LocalEndpoints,
    private readonly log: DropLog,
    /** A queue failed (the device is gone): the loop stops polling it and tells the main thread. */
    private readonly onGone: (fd: number, entry: number, errno: number) => void,
    /** Offloads: the queues carry a virtio header (src/io/tun.ts). */
    private readonly vnet = false,
    /** Offloads with UDP tunnel GSO: this worker's TAP queue and the TAP's MAC (-1, []: none). */
    txTapFd = -1,
    txTapMac: number[] = [],
    /** Offloads with USO (no UDP tunnel GSO): this worker's queue of the USO device (-1: none). */
    txUsoFd = -1,
  ) {
    const tap = vnet && txTapFd >= 0 && txTapMac.length === 6;
    const uso = vnet && !tap && txUsoFd >= 0 && flows !== null;
    this.tunIn = new TunReader(nat, TX_BATCH, TX_SLOT, HEADROOM, vnet, uso ? USO_AREA : 0);
    if (tap) {
      this.tapFd = txTapFd;
      for (let i = 0; i < 6; i++) this.tapMac[i] = txTapMac[i];
      this.tunIn.take = (b, off, len) => (this.rawOnly ? 0 : this.sendWhole(b, off, len));
    } else if (uso) {
      const u = new UsoSender(nat, txUsoFd, rawFd, counters, flows, this.tunIn.areaOff, () => this.sendRaw());
      this.tunIn.take = (b, off, len) => (this.rawOnly ? 0 : u.send(b, off, len, this.eps.epId[this.li], this.eps.slot[this.li], this.now, this.nowMs));
    }
  }

  // ---- offloads: super-packets handed on whole (UDP tunnel GSO, src/control/txtap.ts) ----------
  private tapFd = -1;
  private readonly tapMac = new Uint8Array(6);
  private readonly tapMeta = new Int32Array(3);
  private readonly savedVnet = new Uint8Array(VNET_HDR_LEN);
  private li = 0; // the entry of the queue being read (readable())

  /** A TCP super-packet read from a TUN queue of entry this.li, behind its 10-byte virtio header at
   * b[off]: sent to GWLB as one frame through the TAP, the kernel cutting and sending its segments.
   * Returns the segments sent, or 0 when it is left to be cut here (anything unusual: the cutting
   * path then counts it under its reason, or sends it). */
  private sendWhole(b: Uint8Array, off: number, len: number): number {
    const flows = this.flows;
    if (flows === null) return 0;
    const gso = b[off + 1] & 0x7f;
    if (gso !== VNET_GSO_TCPV4 && gso !== VNET_GSO_TCPV6) return 0;
    const p = off + VNET_HDR_LEN;
    const n = len - VNET_HDR_LEN;
    const gsoSize = b[off + 4] | (b[off + 5] << 8);
    if (n < 40 || n + OUTER_HEADER_LEN + FLOW_HEADER_MAX > 65535) return 0;
    const v6 = b[p] >> 4 === 6;
    let ip: number;
    if (v6) {
      if (gso !== VNET_GSO_TCPV6 || b[p + 6] !== 6 || ((b[p + 4] << 8) | b[p + 5]) + 40 !== n) return 0;
      ip = 40;
    } else {
      if (gso !== VNET_GSO_TCPV4 || b[p] >> 4 !== 4 || b[p + 9] !== 6 || ((b[p + 2] << 8) | b[p + 3]) !== n) return 0;
      if (((b[p + 6] & 0x3f) | b[p + 7]) !== 0) return 0; // a fragment
      ip = (b[p] & 15) * 4;
    }
    if (ip < 20 || ip + 20 > n) return 0;
    const th = (b[p + ip + 12] >> 4) * 4;
    const hl = ip + th;
    if (th < 20 || hl > n || gsoSize === 0 || hl + gsoSize > GWLB_INNER_MTU) return 0;
    const payload = n - hl;
    const segs = payload === 0 ? 1 : Math.ceil(payload / gsoSize);
    const key = this.key;
    if (!flowKeyFromIp(b, p, n, key) || key[10] === 0) return 0;
    key[0] = this.eps.epId[this.li];
    for (let i = 0; i < VNET_HDR_LEN; i++) this.savedVnet[i] = b[off + i];
    const h = flows.lookupInto(key, b, p, this.now);
    if (h < 0) {
      for (let i = 0; i < VNET_HDR_LEN; i++) b[off + i] = this.savedVnet[i];
      return 0;
    }
    // Outer IPv4/UDP: TTL 65, as the kernel forwards the frame (64 leaves, as from the raw socket).
    const start = p - h - OUTER_HEADER_LEN;
    writeOuterIpUdp(b, start, flows.hitLocalIp | 0, flows.hitGwlbIp | 0, flows.hitGwlbPort, GENEVE_PORT, h + n);
    b[start + 8] = 65;
    setIpv4Checksum(b, start, 20);
    const eth = start - 14;
    for (let i = 0; i < 6; i++) {
      b[eth + i] = this.tapMac[i];
      b[eth + 6 + i] = i === 0 ? 2 : 0; // a locally administered source address
    }
    b[eth + 12] = 0x08;
    b[eth + 13] = 0x00;
    // The inner TCP checksum field: the pseudo-header sum with the super-packet's TCP length.
    wr16(b, p + ip + 16, fold16(addrSum(b, p, v6) + 6 + (n - ip)));
    const inner = p - eth;
    const vh = eth - TX_TAP_HDR;
    writeVnetHdr(b, vh, VNET_F_NEEDS_CSUM, gso | (b[off + 1] & VNET_GSO_ECN) | VNET_GSO_UDP_TUNNEL_IPV4, inner + hl, gsoSize, inner + ip, 16);
    for (let i = 10; i < 20; i++) b[vh + i] = 0; // num_buffers, hash value, report, padding
    b[vh + 20] = 34; // outer_th_offset: Ethernet 14 + outer IPv4 20
    b[vh + 21] = 0;
    b[vh + 22] = inner & 0xff; // inner_nh_offset
    b[vh + 23] = inner >>> 8;
    // What waits for the raw socket was read before this: it leaves first (a flow stays in order).
    if (this.sCount !== 0) this.sendRaw();
    const m = this.tapMeta;
    m[0] = this.tapFd;
    m[1] = vh;
    m[2] = TX_TAP_HDR + 14 + OUTER_HEADER_LEN + h + n;
    this.nat.tunWrite(b, m, 1);
    if (m[2] < 0) {
      for (let i = 0; i < VNET_HDR_LEN; i++) b[off + i] = this.savedVnet[i];
      this.counters[C.TUN_TAP_ERRORS] += 1;
      return 0; // cut and sent through the raw socket instead
    }
    const c = this.counters;
    const bytes = n + (segs - 1) * hl;
    countReturned(c, this.eps.slot[this.li], segs, bytes, bytes + segs * (OUTER_HEADER_LEN + h), this.nowMs);
    c[C.TUN_SUPERS_TAPPED] += 1;
    c[C.TUN_TAPPED] += segs;
    if (segs > TX_BATCH) c[C.TUN_SUPERS_LONG] += 1; // the kernel cuts any number (measured: 122 at MSS 536)
    return segs;
  }

  /** Offloads: move the reader's cumulative figures into the counters (and its drops, per endpoint). */
  private offloadCounts(li: number): void {
    const r = this.tunIn;
    const c = this.counters;
    c[C.TUN_RX_PACKETS] += r.taken;
    // (A long super-packet's later chunks add segments without adding a super-packet.)
    if (r.segmented !== this.seenSegmented) {
      c[C.TUN_SUPERS_READ] += r.supers - this.seenSupers;
      c[C.TUN_SEGMENTED] += r.segmented - this.seenSegmented;
      c[C.TUN_SUPERS_LONG] += r.long - this.seenLong;
      this.seenSupers = r.supers;
      this.seenSegmented = r.segmented;
      this.seenLong = r.long;
    }
    for (let e = 1; e < SEG_REASONS.length; e++) {
      const d = r.segErrors[e];
      if (d === 0) continue;
      r.segErrors[e] = 0;
      c[SEG_REASONS[e]] += d;
      c[GLOBAL_CELLS + this.eps.slot[li] * EP_STRIDE + EP.DROPS] += d;
    }
  }

  /** Read and return up to `limit` packets from a TUN queue of endpoint entry li. */
  readable(fd: number, li: number, limit: number): void {
    const tunIn = this.tunIn;
    this.li = li;
    // Offloads: a super-packet read but waiting for room (tunIn.pending) is always placed before
    // returning, so nothing of this queue is left in the reader for another queue's turn.
    for (let round = 0; (round < TX_ROUNDS && limit > 0) || tunIn.pending; round++) {
      const want = tunIn.room < limit ? tunIn.room : limit;
      const n = tunIn.read(fd, want);
      if (this.vnet) this.offloadCounts(li);
      if (n < 0) {
        this.onGone(fd, li, -n);
        return;
      }
      if (n === 0) {
        if (tunIn.pending) this.flush();
        else if (tunIn.taken === 0) return;
        limit -= tunIn.taken;
        continue;
      }
      const first = tunIn.first;
      this.counters[C.TUN_RX_PACKETS] += n;
      for (let k = 0; k < n; k++) this.returnOne(first + k, li);
      tunIn.used = first + n;
      this.counters[C.TX_IN_HAND] = this.sCount;
      limit -= n + tunIn.taken;
      if (tunIn.room === 0) this.flush();
      if (n + tunIn.taken < want && !tunIn.pending) return;
    }
  }

  /** Send what is ready (one sendmmsg) and free the slots. */
  flush(): void {
    this.sendRaw();
    this.tunIn.reset();
  }

  /** Send what is ready (one sendmmsg); the slots stay in use. */
  private sendRaw(): void {
    const counters = this.counters;
    const n = this.sCount;
    if (n !== 0) {
      // A datagram refused alone costs only itself (RAW_SEND_ERROR); a full send queue stops the
      // batch and the rest counts as RAW_SEND_BUSY (see rawSend in src/io/native.ts).
      const done = this.nat.rawSend(this.rawFd, this.tunIn.buf, this.sMeta, n, this.status);
      for (let i = 0; i < n; i++) {
        const slot = this.sSlot[i];
        if (i < done && this.status[i] === 0) countReturned(counters, slot, 1, this.sLen[i], this.sMeta[i * R_STRIDE + R_LEN], this.nowMs);
        else countEpDrop(counters, i < done ? Drop.RAW_SEND_ERROR : Drop.RAW_SEND_BUSY, slot);
      }
      counters[C.TX_IN_HAND] = 0;
    }
    this.sCount = 0;
  }

  /** Encapsulate the packet in slot `t` (read from a TUN queue of entry li) in place. */
  private returnOne(t: number, li: number): void {
    const slot = this.eps.slot[li];
    const flows = this.flows;
    const txBuf = this.tunIn.buf;
    const key = this.key;
    const base = this.tunIn.offset(t);
    const len = this.tunIn.lens[t];
    if (flows === null) {
      countEpDrop(this.counters, Drop.NO_FLOW, slot);
      return;
    }
    if (len > GWLB_INNER_MTU) {
      countEpDrop(this.counters, Drop.RETURN_TOO_BIG, slot);
      return;
    }
    if (!flowKeyFromIp(txBuf, base, len, key)) {
      countEpDrop(this.counters, Drop.RETURN_MALFORMED, slot);
      return;
    }
    key[0] = this.eps.epId[li];
    // No ports: maybe a fragment or an ICMP error, matched through its datagram or its quote.
    const h = key[10] !== 0 ? flows.lookupInto(key, txBuf, base, this.now) : this.related!.lookupPortless(txBuf, base, len, key, this.now);
    if (h < 0) {
      // Only on a miss: tell the kernel's own IPv6 link-local chatter apart from real strays.
      const reason = h === LOOKUP_BAD_QUOTE ? Drop.ICMP_QUOTE_MALFORMED : h === LOOKUP_QUOTE_MISMATCH ? Drop.ICMP_QUOTE_MISMATCH : isLinkLocal6(key) ? Drop.LINK_LOCAL : Drop.NO_FLOW;
      countEpDrop(this.counters, reason, slot);
      this.log.dropped(this.nowMs, reason, 'tunnel', txBuf, base, len);
      return;
    }
    const start = base - h - OUTER_HEADER_LEN;
    // Outer addresses swapped: from the address GWLB sent to, to GWLB; UDP source port = the port
    // GWLB used for this flow, destination 6081 (docs/protocol.md section 2).
    // `| 0`: int32 addresses are small integers; the uint32 ones are not and were boxed into heap
    // numbers when this call was not inlined (see receive() in loop.ts).
    writeOuterIpUdp(txBuf, start, flows.hitLocalIp | 0, flows.hitGwlbIp | 0, flows.hitGwlbPort, GENEVE_PORT, h + len);
    if (this.log.hexDump) this.log.carried(this.nowMs, 'tunnel', txBuf, start, OUTER_HEADER_LEN + h + len);
    const c = this.sCount;
    const m = c * R_STRIDE;
    this.sMeta[m + R_OFF] = start;
    this.sMeta[m + R_LEN] = OUTER_HEADER_LEN + h + len;
    this.sMeta[m + R_DST] = flows.hitGwlbIp | 0;
    this.sSlot[c] = slot;
    this.sLen[c] = len;
    this.sCount = c + 1;
  }
}
