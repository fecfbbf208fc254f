// TUN batch I/O over the addon: a writer that sends a batch of packets to their queues in one
// call, and a reader that fills fixed-size slots (with headroom in front of each packet, for
// encapsulation in place).
//
// This is the boundary behind which TUN offloads will live (as wireguard-go's tun/ hides GRO and
// GSO from device/): a reader on a queue opened with a virtio header will split super-packets
// into plain packets, one per slot, and the writer will coalesce what it is given into
// super-packets, so the packet loop keeps seeing plain packets. Hence the contract counts
// packets, never reads or writes:
// - TunReader.read(fd, max) puts at most `max` packets into the next free slots and returns how
//   many it put there (however many reads that took), or -errno when the queue failed.
// - TunWriter.write() writes every queued packet and reports each one's outcome by its index.
// Nothing is allocated per packet.

import {
  TUNW_META_FD,
  TUNW_META_LEN,
  TUNW_META_OFF,
  TUNW_META_STRIDE,
  type NativeAddon,
} from './native';

const W_STRIDE = TUNW_META_STRIDE;
const W_FD = TUNW_META_FD;
const W_OFF = TUNW_META_OFF;
const W_LEN = TUNW_META_LEN;

export class TunWriter {
  /** Packets queued. */
  count = 0;
  /** The caller's tag of each queued packet (e.g. its endpoint slot), read after write(). */
  readonly tag: Int32Array;
  private readonly meta: Int32Array;
  private buf: Uint8Array | null = null;

  constructor(
    private readonly nat: NativeAddon,
    readonly max: number,
  ) {
    this.meta = new Int32Array(max * W_STRIDE);
    this.tag = new Int32Array(max);
  }

  /** Can buf be queued next? All packets of one batch live in one buffer: when this is false,
   * write() first. */
  accepts(buf: Uint8Array): boolean {
    return this.count === 0 || this.buf === buf;
  }

  /** Queue buf[off, off+len) for queue fd; returns true when the batch is full (write() now). */
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
    if (this.count !== 0) this.nat.tunWrite(this.buf!, this.meta, this.count);
  }

  result(i: number): number {
    return this.meta[i * W_STRIDE + W_LEN];
  }

  clear(): void {
    this.count = 0;
  }
}

export class TunReader {
  /** Slots of slotSize bytes; packet t starts at offset(t) (after the headroom). */
  readonly buf: Uint8Array;
  readonly lens: Int32Array;
  /** Slots filled since the last reset(). */
  used = 0;

  constructor(
    private readonly nat: NativeAddon,
    readonly slots: number,
    readonly slotSize: number,
    readonly headroom: number,
  ) {
    this.buf = new Uint8Array(slots * slotSize);
    this.lens = new Int32Array(slots);
  }

  /** Free slots left. */
  get room(): number {
    return this.slots - this.used;
  }

  offset(t: number): number {
    return t * this.slotSize + this.headroom;
  }

  /** Read at most `max` packets (and at most room) from queue fd into the next free slots.
   * Returns the number of packets read (0: nothing waiting) or -errno (EBADFD/EIO: the device
   * is gone). The caller advances `used` once it has dealt with them. */
  read(fd: number, max: number): number {
    const want = max < this.room ? max : this.room;
    if (want <= 0) return 0;
    return this.nat.tunRead(fd, this.buf, this.slotSize, this.headroom, this.used, want, this.lens);
  }

  reset(): void {
    this.used = 0;
  }
}
