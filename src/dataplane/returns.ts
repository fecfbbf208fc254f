// The return path of a worker: packets the OS routed out of gwi-<X>/gwo-<X>, read a batch of
// slots at a time from the device (src/io/device.ts), matched to their flow, and handed back to
// the device with the flow's Geneve header in front and its outer addressing:
//
//   device.read (plain packets) -> flow key -> flow table lookup (the flow's stored Geneve header
//   is copied in front of the packet) -> device.queue (outer IPv4 + UDP) -> device.send (sendmmsg)
//
// With offloads, a super-packet the device's send tier can take whole is offered as one: looked
// up once here (its Geneve header in front of it), then device.sendWhole() -- one TAP frame (UDP
// tunnel GSO) or a few USO writes -- or decline() on a miss, and the device cuts it into plain
// packets on the next read. This file never sees a virtio header or a tier's frame.
//
// Contract: readable(fd, entry, limit) reads at most `limit` packets from one queue; sends go out
// when the slots are full and when the loop calls flush() at the end of its turn. Every packet
// read is either sent or counted under one drop reason (per endpoint too). The loop sets `now`
// (flow ticks) and `nowMs` (monotonic ms) once per turn. Nothing is allocated per packet.

import type { EndpointDevice, TunDevice } from '../io/device';
import { GWLB_INNER_MTU, TX_BATCH as DEVICE_TX_BATCH } from '../io/device';
import { flowKeyFromIp, isLinkLocal6, KEY_WORDS } from '../wire/flowkey';
import { OUTER_HEADER_LEN } from '../wire/outer';
import { Drop } from '../wire/reasons';
import type { FlowTable } from '../flow/table';
import { LOOKUP_BAD_QUOTE, LOOKUP_QUOTE_MISMATCH, type Related } from './related';
import { C, EP, EP_STRIDE, GLOBAL_CELLS, countEpDrop, countReturned } from './counters';
import type { LocalEndpoints } from './endpoints';
import type { DropLog } from './droplog';

/** Slots per batch of returns (one sendmmsg): the device's. */
export const TX_BATCH = DEVICE_TX_BATCH;
/** How many batches one readiness of a queue may take before others get their turn. */
export const TX_ROUNDS = 4;
/** GWLB drops returned packets whose inner packet exceeds 8500 bytes (docs/protocol.md section 1). */
const INNER_MTU = GWLB_INNER_MTU;
/** Drop reason of each segmentPacket error (index: -SEG_*, src/wire/segment.ts). A super-packet
 * of more segments than TX_BATCH is cut in chunks (TunReader), never dropped for it. */
const SEG_REASONS = [0, Drop.GSO_MALFORMED, Drop.GSO_UNSUPPORTED, Drop.GSO_TOO_BIG, Drop.GSO_NO_ROOM];

export class ReturnPath {
  /** Flow ticks and monotonic ms of the current turn (set by the loop). */
  now = 0;
  nowMs = 0;
  private readonly key = new Uint32Array(KEY_WORDS);
  private readonly sSlot = new Int32Array(TX_BATCH);
  private readonly sLen = new Int32Array(TX_BATCH);
  private seenSupers = 0;
  private seenSegmented = 0;
  private seenLong = 0;

  constructor(
    /** The device's interface, and its offload tallies (the same object). */
    private readonly dev: EndpointDevice,
    private readonly tallies: TunDevice,
    private readonly counters: Float64Array,
    private readonly flows: FlowTable | null,
    private readonly related: Related | null,
    private readonly eps: LocalEndpoints,
    private readonly log: DropLog,
    /** A queue failed (the device is gone): the loop stops polling it and tells the main thread. */
    private readonly onGone: (fd: number, entry: number, errno: number) => void,
    /** Offloads: the queues carry a virtio header (src/io/tun.ts). */
    private readonly vnet = false,
  ) {}

  /** Offloads: send every return through the raw socket, not the send device (set by the loop
   * once per turn from CTRL_TX_RAW: the egress device towards GWLB would pass the device tier's
   * work on unfinished, src/control/egress.ts). */
  set rawOnly(v: boolean) {
    this.dev.rawOnly = v;
  }

  /** A super-packet the device offers whole (read from a queue of entry li): its flow looked up
   * once, the Geneve header put in front of it, and handed to the device's tier. Returns the
   * segments it took (each sent or counted), or 0 when it was declined (anything unusual: the
   * device then cuts it and each segment comes through returnOne, counted under its reason). */
  private returnWhole(li: number): number {
    const dev = this.dev;
    const flows = this.flows;
    const b = dev.buf;
    const p = dev.wholeOff;
    const key = this.key;
    if (flows === null || !flowKeyFromIp(b, p, dev.wholeLen, key) || key[10] === 0) {
      dev.decline();
      return 0;
    }
    key[0] = this.eps.epId[li];
    const h = flows.lookupInto(key, b, p, this.now);
    if (h < 0) {
      dev.decline();
      return 0;
    }
    // What waits for the raw socket was read before this: it leaves first (a flow stays in order).
    this.sendRaw();
    const segs = dev.sendWhole(h, flows.hitLocalIp | 0, flows.hitGwlbIp | 0, flows.hitGwlbPort);
    if (segs === 0) return 0;
    const o = dev.outcome;
    const c = this.counters;
    const slot = this.eps.slot[li];
    if (o.packets !== 0) countReturned(c, slot, o.packets, o.bytes, o.wire, this.nowMs);
    if (o.refused !== 0) this.dropMany(Drop.RAW_SEND_ERROR, slot, o.refused);
    if (o.busy !== 0) this.dropMany(Drop.RAW_SEND_BUSY, slot, o.busy);
    if (o.malformed !== 0) this.dropMany(Drop.GSO_MALFORMED, slot, o.malformed);
    return segs;
  }

  private dropMany(reason: number, slot: number, n: number): void {
    const c = this.counters;
    c[reason] += n;
    c[GLOBAL_CELLS + slot * EP_STRIDE + EP.DROPS] += n;
  }

  /** Offloads: move the device's cumulative figures into the counters (and its drops, per endpoint). */
  private offloadCounts(li: number): void {
    const r = this.tallies.reader;
    const d = this.tallies;
    const c = this.counters;
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
      const n = r.segErrors[e];
      if (n === 0) continue;
      r.segErrors[e] = 0;
      c[SEG_REASONS[e]] += n;
      c[GLOBAL_CELLS + this.eps.slot[li] * EP_STRIDE + EP.DROPS] += n;
    }
    if (d.tunnelErrors !== 0) {
      c[C.TUN_TAP_ERRORS] += d.tunnelErrors;
      d.tunnelErrors = 0;
    }
    if (d.tunnelSupers !== 0) {
      c[C.TUN_SUPERS_TAPPED] += d.tunnelSupers;
      c[C.TUN_TAPPED] += d.tunnelSegments;
      c[C.TUN_SUPERS_LONG] += d.tunnelLong;
      d.tunnelSupers = d.tunnelSegments = d.tunnelLong = 0;
    }
    const u = d.uso;
    if (u !== null && (u.supers !== 0 || u.errors !== 0)) {
      c[C.TUN_SUPERS_USO] += u.supers;
      c[C.TUN_USO] += u.segments;
      c[C.TUN_USO_ERRORS] += u.errors;
      c[C.TUN_SUPERS_LONG] += u.long;
      u.supers = u.segments = u.errors = u.long = 0;
    }
  }

  /** Read and return up to `limit` packets from a TUN queue of endpoint entry li. */
  readable(fd: number, li: number, limit: number): void {
    const dev = this.dev;
    // Offloads: a super-packet read but waiting for room or offered whole (dev.pending) is always
    // dealt with before returning, so nothing of this queue is left in the device for another
    // queue's turn. A super-packet sent whole takes no round (as when the reader handed it on
    // itself): `limit` bounds those.
    for (let round = 0; (round < TX_ROUNDS && limit > 0) || dev.pending; round++) {
      const want = dev.room < limit ? dev.room : limit;
      const n = dev.read(fd, want);
      if (n < 0) {
        if (this.vnet) this.offloadCounts(li);
        this.onGone(fd, li, -n);
        return;
      }
      if (dev.whole) {
        const segs = this.returnWhole(li);
        this.counters[C.TUN_RX_PACKETS] += segs;
        if (this.vnet) this.offloadCounts(li);
        limit -= segs;
        round--;
        continue;
      }
      if (this.vnet) this.offloadCounts(li);
      if (n === 0) {
        if (dev.pending) this.flush();
        else return;
        continue;
      }
      const first = dev.first;
      this.counters[C.TUN_RX_PACKETS] += n;
      for (let k = 0; k < n; k++) this.returnOne(first + k, li);
      dev.done(n);
      this.counters[C.TX_IN_HAND] = dev.queued;
      limit -= n;
      if (dev.room === 0) this.flush();
      if (n < want && !dev.pending) return;
    }
  }

  /** Send what is ready (one sendmmsg) and free the slots. */
  flush(): void {
    this.sendRaw();
    this.dev.reset();
  }

  /** Send what is ready (one sendmmsg) and count each datagram; the slots stay in use. */
  private sendRaw(): void {
    const counters = this.counters;
    const dev = this.dev;
    const n = dev.send();
    if (n === 0) return;
    for (let i = 0; i < n; i++) {
      const slot = this.sSlot[i];
      const r = dev.outcomeOf(i);
      if (r === 0) countReturned(counters, slot, 1, this.sLen[i], dev.wireLen(i), this.nowMs);
      else countEpDrop(counters, r, slot);
    }
    counters[C.TX_IN_HAND] = 0;
  }

  /** Match the packet in slot `t` (read from a TUN queue of entry li) to its flow and queue it. */
  private returnOne(t: number, li: number): void {
    const slot = this.eps.slot[li];
    const flows = this.flows;
    const dev = this.dev;
    const txBuf = dev.buf;
    const key = this.key;
    const base = dev.offset(t);
    const len = dev.lens[t];
    if (flows === null) {
      countEpDrop(this.counters, Drop.NO_FLOW, slot);
      return;
    }
    if (len > INNER_MTU) {
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
    // Outer addresses swapped: from the address GWLB sent to, to GWLB; UDP source port = the port
    // GWLB used for this flow, destination 6081 (docs/protocol.md section 2).
    // `| 0`: int32 addresses are small integers; the uint32 ones are not and were boxed into heap
    // numbers when this call was not inlined (see receive() in inbound.ts).
    const c = dev.queued;
    const start = dev.queue(t, h, flows.hitLocalIp | 0, flows.hitGwlbIp | 0, flows.hitGwlbPort);
    if (this.log.hexDump) this.log.carried(this.nowMs, 'tunnel', txBuf, start, OUTER_HEADER_LEN + h + len);
    this.sSlot[c] = slot;
    this.sLen[c] = len;
  }
}
