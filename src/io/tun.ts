// TUN batch I/O over the addon: a writer that sends a batch of packets to their queues in one
// call, and a reader that fills fixed-size slots (with headroom in front of each packet, for
// encapsulation in place).
//
// This is the boundary behind which the TUN offloads live (as wireguard-go's tun/ hides GRO and
// GSO from device/): a reader on a queue opened with a virtio header splits super-packets into
// plain packets, one per slot, and the writer coalesces what it is given into super-packets, so
// the packet loop sees plain packets only. Hence the contract counts
// packets, never reads or writes:
// - TunReader.read(fd, max) puts at most `max` packets into the next free slots and returns how
//   many it put there (however many reads that took), or -errno when the queue failed.
// - TunWriter.write() writes every queued packet and reports each one's outcome by its index.
// Nothing is allocated per packet.
//
// Offloads (queues opened with IFF_VNET_HDR, docs/architecture.md "TUN offloads"): the writer
// runs the batch through TcpCoalescer (src/wire/coalesce.ts) when its buffer has a coalescing area
// (setCoalesceArea) and writes each unit behind a virtio header: a packet alone behind a zero
// header written in place in front of it (the 10 bytes before an inner packet are its Geneve
// header, already parsed and stored), a super-packet from the area. The reader reads whole
// super-packets (up to 64 KiB) into a separate big area of its buffer and cuts each into complete
// segments in the slots (segmentPacket, src/wire/segment.ts); a packet that is not a super-packet
// is copied into its slot (its checksum completed when the kernel left it partial). A super-packet
// with more segments than the free slots is cut in chunks, as many as fit each time: the rest
// stays pending until the caller has sent those and freed the slots (a peer with MSS 536 makes
// 64 KiB super-packets of about 120 segments, more than the 64 slots of the return path).

import {
  TUNW_META_FD,
  TUNW_META_LEN,
  TUNW_META_OFF,
  TUNW_META_STRIDE,
  type NativeAddon,
} from './native';
import { TcpCoalescer } from '../wire/coalesce';
import { segmentPacket, Segments, SEG_NO_ROOM } from '../wire/segment';
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_HDR_LEN, writeVnetNone } from '../wire/virtio';
import { completeChecksum } from '../wire/segment';

const W_STRIDE = TUNW_META_STRIDE;
const W_FD = TUNW_META_FD;
const W_OFF = TUNW_META_OFF;
const W_LEN = TUNW_META_LEN;

export class TunWriter {
  /** Packets queued. */
  count = 0;
  /** The caller's tag of each queued packet (e.g. its endpoint slot), read after write(). */
  readonly tag: Int32Array;
  /** Offloads: packets that went out inside super-packets, and the super-packets (the caller
   * takes them into its counters and zeroes them). */
  coalesced = 0;
  supers = 0;
  private readonly meta: Int32Array;
  private buf: Uint8Array | null = null;
  // Offloads only.
  private readonly co: TcpCoalescer | null;
  private readonly res: Int32Array;
  private areaBuf: Uint8Array | null = null;
  private areaOff = 0;
  private areaCap = 0;

  constructor(
    private readonly nat: NativeAddon,
    readonly max: number,
    /** The queues carry a virtio header (opened with IFF_VNET_HDR). */
    readonly vnet = false,
  ) {
    this.meta = new Int32Array(max * W_STRIDE);
    this.tag = new Int32Array(max);
    this.co = vnet ? new TcpCoalescer(max, VNET_HDR_LEN) : null;
    this.res = new Int32Array(vnet ? max : 0);
  }

  /** Offloads: batches in `buf` may be coalesced, super-packets built in buf[off, off+cap), which
   * no queued packet may overlap. Batches in another buffer are written packet by packet. */
  setCoalesceArea(buf: Uint8Array, off: number, cap: number): void {
    this.areaBuf = buf;
    this.areaOff = off;
    this.areaCap = cap;
  }

  /** Can buf be queued next? All packets of one batch live in one buffer: when this is false,
   * write() first. */
  accepts(buf: Uint8Array): boolean {
    return this.count === 0 || this.buf === buf;
  }

  /** Queue buf[off, off+len) for queue fd; returns true when the batch is full (write() now).
   * With offloads the VNET_HDR_LEN bytes before off are overwritten by write(). */
  push(fd: number, buf: Uint8Array, off: number, len: number, tag: number): boolean {
    const m = this.count * W_STRIDE;
    this.buf = buf;
    this.meta[m + W_FD] = fd;
    this.meta[m + W_OFF] = off;
    this.meta[m + W_LEN] = len;
    this.tag[this.count] = tag;
    return ++this.count === this.max;
  }

  /** Write the queued packets (one call for the batch). Afterwards, until clear(), result(i) is
   * packet i's length when written, or -errno (EAGAIN: its queue was full). */
  write(): void {
    if (this.count === 0) return;
    if (this.co === null) {
      this.nat.tunWrite(this.buf!, this.meta, this.count);
      return;
    }
    this.writeUnits(this.buf!);
  }

  result(i: number): number {
    return this.co === null ? this.meta[i * W_STRIDE + W_LEN] : this.res[i];
  }

  clear(): void {
    this.count = 0;
  }

  /** Offloads: coalesce (only in the registered buffer), then one write per unit. */
  private writeUnits(buf: Uint8Array): void {
    const co = this.co!;
    const meta = this.meta;
    const n = this.count;
    for (let i = 0; i < n; i++) {
      const m = i * W_STRIDE;
      co.off[i] = meta[m + W_OFF];
      co.len[i] = meta[m + W_LEN];
      co.group[i] = meta[m + W_FD]; // one queue = one endpoint (its Geneve headers are stored per packet already)
      this.res[i] = meta[m + W_LEN];
    }
    const area = buf === this.areaBuf;
    const units = co.run(buf, n, area ? this.areaOff : 0, area ? this.areaCap : 0);
    // The unit table is rewritten into meta (units <= n, and unit u's first packet is >= u).
    for (let u = 0; u < units; u++) {
      const hd = co.unitHead[u];
      const fd = meta[hd * W_STRIDE + W_FD];
      const m = u * W_STRIDE;
      if (co.unitPkts[u] === 1) {
        const off = co.off[hd];
        writeVnetNone(buf, off - VNET_HDR_LEN, VNET_HDR_LEN);
        meta[m + W_FD] = fd;
        meta[m + W_OFF] = off - VNET_HDR_LEN;
        meta[m + W_LEN] = co.len[hd] + VNET_HDR_LEN;
      } else {
        meta[m + W_FD] = fd;
        meta[m + W_OFF] = co.unitOff[u];
        meta[m + W_LEN] = co.unitLen[u];
        this.coalesced += co.unitPkts[u];
        this.supers++;
      }
    }
    this.nat.tunWrite(buf, meta, units);
    for (let u = 0; u < units; u++) {
      const r = meta[u * W_STRIDE + W_LEN];
      if (r >= 0) continue;
      for (let i = co.unitHead[u]; i >= 0; i = co.unitPkts[u] === 1 ? -1 : co.next[i]) this.res[i] = r;
    }
  }
}

/** Offloads: bytes of one big read slot (a 64 KiB super-packet behind its virtio header, after
 * BIG_HEAD bytes of room for a sender that hands it on whole with headers in front). */
const BIG_SLOT = 65536 + 256;
export const BIG_HEAD = 160;
/** Offloads: packets read per tunRead call at most (each into a big slot: a plain packet is then
 * copied into its slot, so small packets should not cost a call each). */
const BIG_SLOTS = 16;

export class TunReader {
  /** Slots of slotSize bytes; packet t starts at offset(t) (after the headroom). */
  readonly buf: Uint8Array;
  readonly lens: Int32Array;
  /** Slots filled since the last reset(). */
  used = 0;
  /** The slot of the first packet the last read() put. */
  first = 0;
  /** Offloads (cumulative): super-packets read, segments cut from them, packets dropped by reason
   * (index: -SEG_* of src/wire/segment.ts, whose names are SEG_ERROR_NAMES); `long`: super-packets
   * cut here with more segments than there are slots (so in several chunks). */
  supers = 0;
  segmented = 0;
  long = 0;
  readonly segErrors = new Float64Array(5);
  /** Offloads: segments of the super-packets that `take` sent on whole during the last read(). */
  taken = 0;
  /** Offloads: offered every TCP super-packet (its virtio header at buf[off], len bytes with it,
   * BIG_HEAD bytes free before off) before it is cut: returns how many segments it sent on whole,
   * or 0 to leave it to be cut here (then the virtio header must be as it was). */
  take: ((buf: Uint8Array, off: number, len: number) => number) | null = null;
  // Offloads only: packets read but not yet put into slots (big slots pendI..pendN-1).
  private pendI = 0;
  private pendN = 0;
  /** The next segment of pending packet pendI to cut (0: it has not been started). */
  private pendSeg = 0;
  private readonly bigFirst: number;
  private readonly bigLens: Int32Array;
  private readonly segs: Segments;
  /** Where the caller's room (the constructor's `area`) starts in buf. */
  readonly areaOff: number;

  constructor(
    private readonly nat: NativeAddon,
    readonly slots: number,
    readonly slotSize: number,
    readonly headroom: number,
    /** The queues carry a virtio header (opened with IFF_VNET_HDR). */
    readonly vnet = false,
    /** Bytes of room after everything else, for the caller (areaOff): USO, src/dataplane/uso.ts. */
    area = 0,
  ) {
    // Offloads: the big slots follow the slots, at a multiple of BIG_SLOT (tunRead's slot layout).
    this.bigFirst = vnet ? Math.ceil((slots * slotSize) / BIG_SLOT) : 0;
    this.areaOff = vnet ? (this.bigFirst + BIG_SLOTS) * BIG_SLOT : slots * slotSize;
    this.buf = new Uint8Array(this.areaOff + area);
    this.lens = new Int32Array(slots);
    this.bigLens = new Int32Array(vnet ? this.bigFirst + BIG_SLOTS : 0);
    this.segs = new Segments(vnet ? slots : 0);
  }

  /** Free slots left. */
  get room(): number {
    return this.slots - this.used;
  }

  /** Packets read from the queue and not yet put into slots (offloads: a super-packet waits for
   * room). The caller frees the slots (flush, reset()) and reads again before another queue. */
  get pending(): boolean {
    return this.pendI < this.pendN;
  }

  offset(t: number): number {
    return t * this.slotSize + this.headroom;
  }

  /** Read at most `max` packets (and at most room) from queue fd into the next free slots, the
   * first at slot `first`. Returns the number of packets read (0: nothing waiting, or -- when
   * `pending` -- no room for the next super-packet's segments) or -errno (EBADFD/EIO: the device
   * is gone). Offloads: a pending super-packet's segments fill the free slots whatever `max` says
   * (so one may take the count past `max`); one with more segments than are free is cut in chunks
   * over several reads, the rest pending. The caller advances `used` once it has dealt with them. */
  read(fd: number, max: number): number {
    this.first = this.used;
    this.taken = 0;
    if (!this.vnet) {
      const want = max < this.room ? max : this.room;
      if (want <= 0) return 0;
      return this.nat.tunRead(fd, this.buf, this.slotSize, this.headroom, this.used, want, this.lens);
    }
    let k = 0;
    for (;;) {
      if (this.pendI === this.pendN) {
        const left = max - k - this.taken;
        const want = left < BIG_SLOTS ? left : BIG_SLOTS;
        if (want <= 0 || this.used + k >= this.slots) break;
        const r = this.nat.tunRead(fd, this.buf, BIG_SLOT, BIG_HEAD, this.bigFirst, want, this.bigLens);
        if (r < 0 && k === 0) return r;
        if (r <= 0) break;
        this.pendI = 0;
        this.pendN = r;
      }
      const got = this.place(this.used + k);
      if (got < 0) break; // no room: stays pending
      k += got;
      if (this.pendSeg !== 0) break; // a chunk of a long super-packet filled the slots: the rest stays pending
      this.pendI++;
    }
    return k;
  }

  reset(): void {
    this.used = 0;
  }

  /** Puts pending packet pendI into the slots from t on. Returns the packets put there (0: it was
   * dropped, counted in segErrors), or -1 when it needs more room than is free (used > 0). A
   * super-packet with more segments than are free: as many as fit, pendSeg then names the next. */
  private place(t: number): number {
    const b = this.buf;
    const off = (this.bigFirst + this.pendI) * BIG_SLOT + BIG_HEAD;
    const len = this.bigLens[this.bigFirst + this.pendI];
    const room = this.slots - t;
    if (len >= VNET_HDR_LEN && (b[off + 1] & ~VNET_GSO_ECN & 0xff) === VNET_GSO_NONE) {
      // A plain packet: copied into its slot (a partial checksum completed first).
      if (room < 1) return -1;
      const n = len - VNET_HDR_LEN;
      const p = off + VNET_HDR_LEN;
      if ((b[off] & VNET_F_NEEDS_CSUM) !== 0) {
        const start = b[off + 6] | (b[off + 7] << 8);
        const coff = b[off + 8] | (b[off + 9] << 8);
        if (!completeChecksum(b, p, n, start, coff)) {
          this.segErrors[1] += 1; // gso_malformed
          return 0;
        }
      }
      const cap = this.slotSize - this.headroom;
      const c = n < cap ? n : cap; // longer than any inner packet may be: the IP length shows the cut
      b.copyWithin(this.offset(t), p, p + c);
      this.lens[t] = c;
      return 1;
    }
    const from = this.pendSeg;
    if (this.take !== null && from === 0) {
      // Packets put into slots by this read are sent after it returns: a super-packet handed on
      // now would overtake them. It waits for the next read (the caller reads again while pending).
      if (t !== this.first) return -1;
      const w = this.take(b, off, len);
      if (w > 0) {
        this.taken += w;
        return 0;
      }
    }
    const segs = this.segs;
    const r = segmentPacket(b, off, len, VNET_HDR_LEN, segs, this.offset(t), this.slotSize, true, room, from);
    if (r === SEG_NO_ROOM && t > 0) return -1;
    if (r < 0) {
      this.pendSeg = 0;
      this.segErrors[-r] += 1;
      return 0;
    }
    for (let k = 0; k < r; k++) this.lens[t + k] = segs.len[k];
    if (from === 0) {
      this.supers++;
      if (segs.total > this.slots) this.long++;
    }
    this.segmented += r;
    this.pendSeg = from + r < segs.total ? from + r : 0;
    return r;
  }
}
