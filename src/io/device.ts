// The device boundary of a worker (what wireguard-go's tun.Device is to its device/): the TUN
// queues of its endpoints (gwi-X/gwo-X), their offloads, and the three send tiers back to GWLB,
// behind one small interface. The data plane (src/dataplane/) reads batches of plain packets and
// hands back returns -- a packet and its flow's outer addressing, the flow's Geneve header already
// in front of it -- nothing more: it never sees a virtio header, a TAP frame or a USO packet, and
// the device never calls back into the data plane.
//
//   write side:  out (TunWriter, src/io/tun.ts): decapsulated packets to gwi- queues, coalesced into
//                super-packets when the queues carry virtio headers
//   read side:   read(fd, max) -> plain packets in slots first..first+n-1 (super-packets cut into
//                segments, src/wire/segment.ts), or, on a tier that takes them (below), one
//                super-packet offered whole (`whole`)
//   send side:   queue(t, h, ...) + send(): the raw tier (sendmmsg, one datagram per packet);
//                sendWhole(h, ...) / decline(): the super-packet offered whole, through the tier
//
// Send tiers (docs/architecture.md "TUN offloads"), chosen once at construction from what the main
// thread opened: TIER_TUNNEL (UDP tunnel GSO: one TAP frame per super-packet, src/io/txtap.ts,
// frames by src/wire/txframe.ts), TIER_USO (segments cut here, written as UDP GSO packets,
// src/io/uso.ts), TIER_RAW (segments cut here, sent through the raw socket). `rawOnly`, set per
// turn, sends everything through the raw socket (the egress device would pass the other tiers'
// work on unfinished, src/control/egress.ts).
//
// Contract of a turn on one queue: read(); for a whole super-packet the caller looks its flow up
// with the Geneve header ending at wholeOff (overwriting the virtio header: the device saved it),
// sends what it queued before (send(), so that the flow stays in order) and calls sendWhole(), or
// decline() on a miss; for plain packets it queues each (or drops it) and calls done(n). send()
// and reset() free the slots. The device counts nothing itself: send()'s outcome(i), `outcome`
// after sendWhole() and the cumulative tallies (reader, tunnel*, uso) are moved into the data
// plane's counters by the caller. Nothing is allocated per packet.

import type { NativeAddon } from './native';
import { RAW_META_DST, RAW_META_LEN, RAW_META_OFF, RAW_META_STRIDE } from './native';
import { TunReader, TunWriter } from './tun';
import { SendOutcome } from './outcome';
import { UsoSender, USO_AREA, usoCandidate } from './uso';
import { VNET_HDR_LEN } from '../wire/virtio';
import { tapSegments, tapSuperHeaders, writeTapFrame, TX_TAP_FRONT } from '../wire/txframe';
import { writeOuterIpUdp, OUTER_HEADER_LEN } from '../wire/outer';
import { GENEVE_PORT } from '../wire/geneve';
import { Drop } from '../wire/reasons';
import { FLOW_HEADER_MAX, RX_SLOT } from '../wire/sizes';

export const TIER_RAW = 0;
export const TIER_TUNNEL = 1;
export const TIER_USO = 2;

/** Return slots per batch (one sendmmsg). */
export const TX_BATCH = 64;
/** Room in front of each packet read from TUN for the outer IPv4+UDP and the stored Geneve
 * header, so encapsulation is done in place, without copying the inner packet. */
const HEADROOM = 96;
if (HEADROOM < OUTER_HEADER_LEN + FLOW_HEADER_MAX) throw new Error('HEADROOM too small');
/** GWLB drops returned packets whose inner packet exceeds 8500 bytes (docs/protocol.md section 1). */
export const GWLB_INNER_MTU = 8500;
const R_STRIDE = RAW_META_STRIDE;
const R_OFF = RAW_META_OFF;
const R_LEN = RAW_META_LEN;
const R_DST = RAW_META_DST;

export interface DeviceOptions {
  /** This worker's raw IPv4 socket (the raw tier). */
  rawFd: number;
  /** Writes to gwi- per batch at most. */
  writeBatch: number;
  /** The queues carry a virtio header (--offload on, opened with IFF_VNET_HDR). */
  vnet: boolean;
  /** UDP tunnel GSO: this worker's TAP queue and the TAP's MAC (-1, []: none). */
  tapFd: number;
  tapMac: number[];
  /** USO: this worker's queue of the USO device (-1: none). Used only without the TAP. */
  usoFd: number;
  /** Coalesced super-packets are built in buf[off, off+cap) of this buffer (the write side). */
  coalesceArea?: { buf: Uint8Array; off: number; cap: number };
}

/** The interface the data plane sees (implemented by TunDevice over any NativeAddon: the addon,
 * or the in-memory one of src/testkit/fake.ts in unit tests). */
export interface EndpointDevice {
  /** The send tier of super-packets (TIER_*), fixed at construction. */
  readonly tier: number;
  /** Everything through the raw socket this turn. */
  rawOnly: boolean;
  /** Write side: packets to gwi- queues. */
  readonly out: TunWriter;
  // ---- read side ----
  readonly buf: Uint8Array;
  readonly lens: Int32Array;
  offset(t: number): number;
  readonly first: number;
  readonly room: number;
  readonly pending: boolean;
  read(fd: number, max: number): number;
  done(n: number): void;
  // ---- a super-packet offered whole ----
  readonly whole: boolean;
  readonly wholeOff: number;
  readonly wholeLen: number;
  sendWhole(h: number, local: number, gwlb: number, gwlbPort: number): number;
  decline(): void;
  readonly outcome: SendOutcome;
  // ---- the raw tier ----
  readonly queued: number;
  queue(t: number, h: number, local: number, gwlb: number, gwlbPort: number): number;
  send(): number;
  outcomeOf(i: number): number;
  wireLen(i: number): number;
  reset(): void;
}

export class TunDevice implements EndpointDevice {
  readonly tier: number;
  rawOnly = false;
  readonly out: TunWriter;
  /** The return side's reader (its cumulative tallies: supers, segmented, long, segErrors). */
  readonly reader: TunReader;
  readonly outcome = new SendOutcome();
  /** Cumulative (the caller moves them into its counters and zeroes them): super-packets sent
   * through the TAP, their segments, TAP writes refused, TAP super-packets of more segments than
   * a batch. The USO tier's are in `uso`. */
  tunnelSupers = 0;
  tunnelSegments = 0;
  tunnelErrors = 0;
  tunnelLong = 0;
  readonly uso: UsoSender | null = null;
  // Raw tier: the batch being built.
  queued = 0;
  private readonly sMeta = new Int32Array(TX_BATCH * R_STRIDE);
  private readonly status = new Int32Array(TX_BATCH);
  private sentDone = 0;
  // The super-packet offered whole.
  private readonly savedVnet = new Uint8Array(VNET_HDR_LEN);
  private wholeHl = 0;
  private readonly tapFd: number;
  private readonly tapMac = new Uint8Array(6);
  private readonly tapMeta = new Int32Array(3);

  constructor(
    private readonly nat: NativeAddon,
    private readonly opts: DeviceOptions,
  ) {
    const tap = opts.vnet && opts.tapFd >= 0 && opts.tapMac.length === 6;
    const uso = opts.vnet && !tap && opts.usoFd >= 0;
    this.tier = tap ? TIER_TUNNEL : uso ? TIER_USO : TIER_RAW;
    this.out = new TunWriter(nat, opts.writeBatch, opts.vnet);
    if (opts.coalesceArea !== undefined) this.out.setCoalesceArea(opts.coalesceArea.buf, opts.coalesceArea.off, opts.coalesceArea.cap);
    this.reader = new TunReader(nat, TX_BATCH, RX_SLOT, HEADROOM, opts.vnet, uso ? USO_AREA : 0);
    this.tapFd = tap ? opts.tapFd : -1;
    for (let i = 0; i < 6 && tap; i++) this.tapMac[i] = opts.tapMac[i];
    if (uso) this.uso = new UsoSender(nat, opts.usoFd, opts.rawFd, this.reader.areaOff, this.outcome);
  }

  get buf(): Uint8Array {
    return this.reader.buf;
  }
  get lens(): Int32Array {
    return this.reader.lens;
  }
  offset(t: number): number {
    return this.reader.offset(t);
  }
  get first(): number {
    return this.reader.first;
  }
  get room(): number {
    return this.reader.room;
  }
  get pending(): boolean {
    return this.reader.pending;
  }
  get whole(): boolean {
    return this.reader.whole;
  }
  /** The inner super-packet offered whole: buf[wholeOff, wholeOff + wholeLen). */
  get wholeOff(): number {
    return this.reader.wholeOff + VNET_HDR_LEN;
  }
  get wholeLen(): number {
    return this.reader.wholeLen - VNET_HDR_LEN;
  }

  /** Plain packets put into slots first..first+n-1 (TunReader.read), 0 (nothing, no room, or a
   * super-packet offered whole: `whole`), or -errno (the queue failed). Super-packets the tier
   * cannot take (not TCP, too big for GWLB, ...) are cut here without being offered. */
  read(fd: number, max: number): number {
    const r = this.reader;
    r.offerWhole = this.tier !== TIER_RAW && !this.rawOnly;
    for (;;) {
      const n = r.read(fd, max);
      if (!r.whole) return n;
      if (this.candidate()) {
        for (let i = 0; i < VNET_HDR_LEN; i++) this.savedVnet[i] = r.buf[r.wholeOff + i];
        return 0;
      }
      r.decline();
    }
  }

  /** Can the tier take the super-packet offered (before its flow is known)? */
  private candidate(): boolean {
    const r = this.reader;
    const b = r.buf;
    const off = r.wholeOff;
    const n = r.wholeLen - VNET_HDR_LEN;
    if (this.tier === TIER_USO) return usoCandidate(b[off + 1], n);
    this.wholeHl = tapSuperHeaders(b, off + VNET_HDR_LEN, n, b[off + 1], b[off + 4] | (b[off + 5] << 8), GWLB_INNER_MTU, FLOW_HEADER_MAX);
    return this.wholeHl !== 0;
  }

  /** The slots first..first+n-1 of the last read() are dealt with (queued or dropped). */
  done(n: number): void {
    this.reader.used = this.reader.first + n;
  }

  /** The super-packet offered whole, its flow's Geneve header (h bytes) ending at wholeOff, sent
   * from `local` to GWLB `gwlb`:`gwlbPort` through the tier. Returns its segments (`outcome`
   * says which were sent and which dropped), or 0: declined, it is cut by the next read(). The
   * caller has sent what it queued before. */
  sendWhole(h: number, local: number, gwlb: number, gwlbPort: number): number {
    const r = this.reader;
    const b = r.buf;
    const sv = this.savedVnet;
    const p = this.wholeOff;
    const n = this.wholeLen;
    let segs = 0;
    if (this.tier === TIER_TUNNEL) {
      const hl = this.wholeHl;
      const gsoSize = sv[4] | (sv[5] << 8);
      const vh = writeTapFrame(b, p, n, h, hl, sv[1], gsoSize, local, gwlb, gwlbPort, this.tapMac);
      const m = this.tapMeta;
      m[0] = this.tapFd;
      m[1] = vh;
      m[2] = TX_TAP_FRONT + h + n;
      this.nat.tunWrite(b, m, 1);
      if (m[2] < 0) this.tunnelErrors += 1; // cut and sent through the raw socket instead
      else {
        segs = tapSegments(n, hl, gsoSize);
        const bytes = n + (segs - 1) * hl;
        const o = this.outcome;
        o.clear();
        o.sent(segs, bytes, bytes + segs * (OUTER_HEADER_LEN + h));
        this.tunnelSupers += 1;
        this.tunnelSegments += segs;
        if (segs > TX_BATCH) this.tunnelLong += 1; // the kernel cuts any number (measured: 122 at MSS 536)
      }
    } else if (this.tier === TIER_USO) {
      const u = this.uso!;
      // The Geneve header goes in front of the USO area; the virtio header back for the cut.
      b.copyWithin(u.first - h, p - h, p);
      for (let i = 0; i < VNET_HDR_LEN; i++) b[r.wholeOff + i] = sv[i];
      segs = u.send(b, r.wholeOff, r.wholeLen, h, local, gwlb, gwlbPort);
    }
    if (segs === 0) this.decline();
    else r.accept();
    return segs;
  }

  /** The super-packet offered whole is not sent whole: the next read() cuts it into slots. */
  decline(): void {
    const r = this.reader;
    for (let i = 0; i < VNET_HDR_LEN; i++) r.buf[r.wholeOff + i] = this.savedVnet[i];
    r.decline();
  }

  /** Raw tier: the packet in slot t, its flow's Geneve header (h bytes) in front of it, gets the
   * outer IPv4/UDP from `local` to GWLB `gwlb`:`gwlbPort` (docs/protocol.md section 2) and is
   * queued for the next send(). Returns where the datagram starts (for the packet log). */
  queue(t: number, h: number, local: number, gwlb: number, gwlbPort: number): number {
    const r = this.reader;
    const len = r.lens[t];
    const start = r.offset(t) - h - OUTER_HEADER_LEN;
    writeOuterIpUdp(r.buf, start, local, gwlb, gwlbPort, GENEVE_PORT, h + len);
    const m = this.queued * R_STRIDE;
    this.sMeta[m + R_OFF] = start;
    this.sMeta[m + R_LEN] = OUTER_HEADER_LEN + h + len;
    this.sMeta[m + R_DST] = gwlb;
    this.queued++;
    return start;
  }

  /** Sends the queued datagrams (one sendmmsg); returns how many were queued. Until the next
   * send(), outcomeOf(i) is 0 (sent) or the drop reason of datagram i, wireLen(i) its length. The
   * slots stay in use until reset(). */
  send(): number {
    const n = this.queued;
    if (n !== 0) {
      // A datagram refused alone costs only itself (RAW_SEND_ERROR); a full send queue stops the
      // batch and the rest counts as RAW_SEND_BUSY (see rawSend in src/io/native.ts).
      this.sentDone = this.nat.rawSend(this.opts.rawFd, this.reader.buf, this.sMeta, n, this.status);
    }
    this.queued = 0;
    return n;
  }

  outcomeOf(i: number): number {
    return i < this.sentDone ? (this.status[i] === 0 ? 0 : Drop.RAW_SEND_ERROR) : Drop.RAW_SEND_BUSY;
  }

  wireLen(i: number): number {
    return this.sMeta[i * R_STRIDE + R_LEN];
  }

  /** Frees the slots (after send()). */
  reset(): void {
    this.reader.reset();
  }
}
