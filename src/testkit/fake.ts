// An in-memory NativeAddon (the contract in src/io/native.ts), for unit tests of the packet loop
// without root, threads or devices -- what wireguard-go's tuntest and bindtest are to its device
// package. Never loaded by the daemon: src/testkit/ holds tools of the tests and the emulator,
// which the product never imports. The device of a worker (src/io/device.ts: reader, writer, send
// tiers) runs over it unchanged, as it runs over the addon, so the same EndpointDevice is tested.
//
// What it models:
// - UDP sockets: datagrams injected with injectUdp() are returned by udpRecv in order, with the
//   metadata layout and truncation flag of the real call.
// - Raw sockets: rawSend copies each datagram into `sent`; rawFault may refuse one (any errno: that
//   one only, the batch goes on; EAGAIN/ENOBUFS: the batch stops there), as the kernel does.
// - TUN devices: tunOpen attaches a queue (creating the device); a packet written to a device goes
//   to `route`, by default one-arm forwarding: what is written to gwi-X comes out of gwo-X, on the
//   queue that a flow hash of its addresses picks among the attached ones (TUNSETQUEUE detaches
//   and attaches); deleteDevice() makes its queues fail with EBADFD, as a deleted device does.
// - Offloads: a device whose queues were opened with vnetHdr carries a 10-byte virtio header in
//   front of every packet both ways; `written` and `route` see packets as written (header
//   included) and the default route passes them on unchanged (as the kernel forwards a
//   super-packet to a device with TSO); deliver() of a plain packet puts a zero header in front.
//   tunSetOffload records the flags (`offloadRefused` refuses bits, as an older kernel would).
//   Any other vnet TUN (the USO device) routes what is written to it out: a UDP GSO packet is cut
//   into datagrams that land in `sent` like raw sends (routeOut). `tunFault` may refuse a write.
// - Child processes: `zombies` lists exited children; reapOrphans collects them in order up to
//   the first one in `ours`, as the addon's peek-then-collect loop does.
// - The egress device (routeDev, linkOffloads): `routes` maps a destination to a device name
//   ('' or absent: no route) and `links` a device to its driver and active features.
// - epoll: epollWait returns at once the registered descriptors with something to read (or a
//   failure to report); it never sleeps.
// Argument checks throw RangeError like the addon's, so misuse fails loudly in tests.

import type { NativeAddon } from '../io/native';
import { monoMs } from '../base/clock';
import { sendQueueFull } from '../io/constants';
import { RAW_META_DST, RAW_META_LEN, RAW_META_OFF, RAW_META_STRIDE, TUNW_META_FD, TUNW_META_LEN, TUNW_META_OFF, TUNW_META_STRIDE, UDP_FLAG_TRUNCATED, UDP_META_DST, UDP_META_FLAGS, UDP_META_LEN, UDP_META_SPORT, UDP_META_SRC, UDP_META_STRIDE } from '../io/native';

export const EBADFD = 77;
export const EIO = 5;

export interface FakeDatagram {
  data: Uint8Array;
  src: number;
  sport: number;
  dst: number;
}

interface Queue {
  dev: string;
  rx: Uint8Array[];
  attached: boolean;
}

interface Device {
  queues: number[];
  vnet: boolean;
  offload: number;
  gone: boolean;
  mtu: number;
  up: boolean;
  /** TUNSETPERSIST: outlives its last queue. */
  persist: boolean;
}

export class FakeAddon implements NativeAddon {
  /** Datagrams handed to raw sockets, in order: the whole IPv4 packet and its destination. */
  readonly sent: { data: Uint8Array; dst: number }[] = [];
  /** Packets written to TUN devices, in order (before routing). */
  readonly written: { dev: string; data: Uint8Array }[] = [];
  /** An errno to refuse a raw datagram with, or 0 to send it. */
  rawFault: ((data: Uint8Array, dst: number) => number) | null = null;
  /** Where a packet written to a TUN device goes; by default from gwi-X out of gwo-X. */
  route: (dev: string, pkt: Uint8Array) => void = (dev, pkt) => {
    if (dev.startsWith('gwi-')) this.deliverRaw('gwo-' + dev.slice(4), pkt);
    else if (!dev.startsWith('gwo-') && this.devices.get(dev)?.vnet === true && !this.tapHdr.has(dev)) this.routeOut(pkt);
  };
  /** An errno to refuse a TUN write with (that packet only), or 0 to write it. */
  tunFault: ((dev: string, data: Uint8Array) => number) | null = null;
  /** TUNSETOFFLOAD bits this kernel does not know (refused with EINVAL). */
  offloadRefused = 0;
  readonly devices = new Map<string, Device>();
  private readonly udp = new Map<number, FakeDatagram[]>();
  private readonly raw = new Set<number>();
  private readonly queues = new Map<number, Queue>();
  private readonly epolls = new Map<number, Set<number>>();
  private nextFd = 100;

  // ---- test controls ---------------------------------------------------------------------------
  injectUdp(fd: number, d: FakeDatagram): void {
    const q = this.udp.get(fd);
    if (q === undefined) throw new Error(`not a fake UDP socket: ${fd}`);
    q.push(d);
  }

  /** Make a plain packet come out of device `name` (as the kernel routing it there would). */
  deliver(name: string, pkt: Uint8Array): void {
    const d = this.devices.get(name);
    if (d?.vnet === true) {
      const v = new Uint8Array(10 + pkt.length);
      v.set(pkt, 10);
      pkt = v;
    }
    this.deliverRaw(name, pkt);
  }

  /** Make bytes come out of device `name` as they are (behind their virtio header on a vnet device). */
  deliverRaw(name: string, pkt: Uint8Array): void {
    const d = this.devices.get(name);
    if (d === undefined || d.gone) return;
    const live = d.queues.filter((fd) => this.queues.get(fd)!.attached);
    if (live.length === 0) return; // the kernel drops it (no queue attached)
    this.queues.get(live[flowHash(pkt) % live.length])!.rx.push(pkt.slice());
  }

  deleteDevice(name: string): void {
    const d = this.devices.get(name);
    if (d !== undefined) d.gone = true;
  }

  /** Packets waiting on a queue. */
  pending(fd: number): number {
    return this.queues.get(fd)?.rx.length ?? 0;
  }

  // ---- NativeAddon -------------------------------------------------------------------------------
  tunOpen(name: string, vnetHdr = false): number {
    let d = this.devices.get(name);
    if (d === undefined || d.gone) {
      d = { queues: [], gone: false, mtu: 1500, up: false, vnet: vnetHdr, offload: 0, persist: false };
      this.devices.set(name, d);
    }
    d.vnet = vnetHdr; // the flags of the last TUNSETIFF are the device's
    const fd = this.nextFd++;
    d.queues.push(fd);
    this.queues.set(fd, { dev: name, rx: [], attached: true });
    return fd;
  }

  tapOpen(name: string, vnetHdrSize: number): number {
    if (vnetHdrSize < 10 || vnetHdrSize > 64) throw new RangeError('tapOpen: vnetHdrSize must be 10..64');
    const fd = this.tunOpen(name, true);
    this.tapHdr.set(name, vnetHdrSize);
    return fd;
  }
  /** TAP devices and their virtio header sizes (frames written to them are in `written`). */
  readonly tapHdr = new Map<string, number>();

  tunSetOffload(fd: number, flags: number): number {
    const q = this.queues.get(fd);
    const d = q === undefined ? undefined : this.devices.get(q.dev);
    if (d === undefined) return 9; // EBADF
    if (!d.vnet && flags !== 0) return 22; // EINVAL
    if ((flags & this.offloadRefused) !== 0) return 22;
    d.offload = flags;
    return 0;
  }

  tunSetQueue(fd: number, attach: boolean): void {
    const q = this.queues.get(fd);
    if (q === undefined) throw Object.assign(new Error('tunSetQueue: TUNSETQUEUE: Bad file descriptor'), { code: 'EBADF' });
    if (!attach) q.rx.length = 0; // the kernel discards what a detached queue held
    q.attached = attach;
  }

  tunSetPersist(fd: number, on: boolean): void {
    const q = this.queues.get(fd);
    const d = q === undefined ? undefined : this.devices.get(q.dev);
    if (d === undefined || d.gone) throw Object.assign(new Error('tunSetPersist: TUNSETPERSIST: File descriptor in bad state'), { code: 'EBADFD' });
    d.persist = on;
  }

  /** Whether device `name` exists and is persistent. */
  persistent(name: string): boolean {
    const d = this.devices.get(name);
    return d !== undefined && !d.gone && d.persist;
  }

  linkSetup(name: string, mtu: number, _txqueuelen: number): void {
    const d = this.devices.get(name);
    if (d === undefined) throw Object.assign(new Error(`linkSetup(${name}): No such device`), { code: 'ENODEV' });
    d.mtu = mtu;
    d.up = true;
  }

  /** routeDev's answers: destination IPv4 -> device ('' or absent: no route). */
  readonly routes = new Map<number, string>();
  /** linkOffloads' answers: device -> driver and active features (absent: ENODEV). */
  readonly links = new Map<string, { driver: string; features: string[] }>();

  routeDev(dst: number): string {
    return this.routes.get(dst >>> 0) ?? '';
  }

  linkOffloads(name: string): { driver: string; features: string[] } {
    const l = this.links.get(name);
    if (l === undefined) throw Object.assign(new Error(`linkOffloads(${name}): SIOCGIFINDEX: No such device`), { code: 'ENODEV' });
    return { driver: l.driver, features: [...l.features] };
  }

  ifIndex(name: string): number {
    const d = this.devices.get(name);
    return d === undefined || d.gone ? 0 : [...this.devices.keys()].indexOf(name) + 1;
  }

  setCloexec(): void {
    // nothing is ever executed here
  }

  sdNotify(): number {
    return 0;
  }

  monoInto(out: Float64Array): void {
    out[0] = monoMs(); // the same clock; allocation does not matter here
  }

  close(fd: number): void {
    this.udp.delete(fd);
    this.raw.delete(fd);
    this.epolls.delete(fd);
    const q = this.queues.get(fd);
    if (q !== undefined) {
      this.queues.delete(fd);
      const d = this.devices.get(q.dev)!;
      d.queues = d.queues.filter((x) => x !== fd);
      if (d.queues.length === 0 && !d.persist) this.devices.delete(q.dev); // gone with its last queue unless persistent
    }
  }

  udpOpen(_port: number, _rcvbuf: number, _reusePort: boolean): number {
    const fd = this.nextFd++;
    this.udp.set(fd, []);
    return fd;
  }

  udpRecv(fd: number, buf: Uint8Array, slotSize: number, maxPkts: number, meta: Int32Array): number {
    if (slotSize < 1 || maxPkts < 0 || maxPkts * slotSize > buf.length || maxPkts * UDP_META_STRIDE > meta.length) throw new RangeError('udpRecv: bad sizes');
    const q = this.udp.get(fd);
    if (q === undefined) return -9; // EBADF
    let n = 0;
    while (n < maxPkts && q.length > 0) {
      const d = q.shift()!;
      const len = Math.min(d.data.length, slotSize);
      buf.set(d.data.subarray(0, len), n * slotSize);
      const m = n * UDP_META_STRIDE;
      meta[m + UDP_META_LEN] = len;
      meta[m + UDP_META_SRC] = d.src | 0;
      meta[m + UDP_META_SPORT] = d.sport;
      meta[m + UDP_META_DST] = d.dst | 0;
      meta[m + UDP_META_FLAGS] = d.data.length > slotSize ? UDP_FLAG_TRUNCATED : 0;
      n++;
    }
    return n;
  }

  rawOpen(_sndbuf: number): number {
    const fd = this.nextFd++;
    this.raw.add(fd);
    return fd;
  }

  rawSend(fd: number, buf: Uint8Array, meta: Int32Array, count: number, status: Int32Array): number {
    if (count * RAW_META_STRIDE > meta.length || status.length < count) throw new RangeError('rawSend: meta/status too short');
    for (let i = 0; i < count; i++) {
      const off = meta[i * RAW_META_STRIDE + RAW_META_OFF];
      const len = meta[i * RAW_META_STRIDE + RAW_META_LEN];
      if (off < 0 || len < 0 || off + len > buf.length) throw new RangeError('rawSend: packet offset/length outside buf');
    }
    if (!this.raw.has(fd)) {
      status.fill(9, 0, count); // EBADF, each alone
      return count;
    }
    for (let i = 0; i < count; i++) {
      const m = i * RAW_META_STRIDE;
      const data = buf.slice(meta[m + RAW_META_OFF], meta[m + RAW_META_OFF] + meta[m + RAW_META_LEN]);
      const dst = meta[m + RAW_META_DST] >>> 0;
      const e = this.rawFault === null ? 0 : this.rawFault(data, dst);
      if (sendQueueFull(e)) {
        status.fill(e, i, count);
        return i;
      }
      status[i] = e;
      if (e === 0) this.sent.push({ data, dst });
    }
    return count;
  }

  tunRead(fd: number, buf: Uint8Array, slotSize: number, headroom: number, firstSlot: number, maxPkts: number, lens: Int32Array): number {
    if (headroom >= slotSize || (firstSlot + maxPkts) * slotSize > buf.length || firstSlot + maxPkts > lens.length) throw new RangeError('tunRead: slots outside buf');
    const q = this.queues.get(fd);
    if (q === undefined) return -9;
    if (this.devices.get(q.dev)?.gone !== false) return -EBADFD;
    let k = 0;
    while (k < maxPkts && q.rx.length > 0) {
      const p = q.rx.shift()!;
      const len = Math.min(p.length, slotSize - headroom);
      buf.set(p.subarray(0, len), (firstSlot + k) * slotSize + headroom);
      lens[firstSlot + k] = len;
      k++;
    }
    return k;
  }

  tunWrite(buf: Uint8Array, meta: Int32Array, count: number): number {
    if (count * TUNW_META_STRIDE > meta.length) throw new RangeError('tunWrite: meta too short');
    let written = 0;
    for (let i = 0; i < count; i++) {
      const m = i * TUNW_META_STRIDE;
      const off = meta[m + TUNW_META_OFF];
      const len = meta[m + TUNW_META_LEN];
      if (off < 0 || len < 0 || off + len > buf.length) throw new RangeError('tunWrite: packet offset/length outside buf');
      const q = this.queues.get(meta[m + TUNW_META_FD]);
      const d = q === undefined ? undefined : this.devices.get(q.dev);
      if (d === undefined || d.gone) {
        meta[m + TUNW_META_LEN] = -EIO;
        continue;
      }
      const pkt = buf.slice(off, off + len);
      const e = this.tunFault === null ? 0 : this.tunFault(q!.dev, pkt);
      if (e !== 0) {
        meta[m + TUNW_META_LEN] = -e;
        continue;
      }
      this.written.push({ dev: q!.dev, data: pkt });
      this.route(q!.dev, pkt);
      written++;
    }
    return written;
  }

  /** What the kernel does with an IPv4 UDP packet written to a vnet TUN that routes it out (the USO
   * device, src/io/usotun.ts): forwarded (TTL - 1), a GSO_UDP_L4 packet cut at gso_size into
   * datagrams, each with a copy of the IPv4/UDP header, its lengths, an IPv4 ID incremented per
   * datagram and its UDP checksum completed (NEEDS_CSUM); each goes to `sent` like a raw send.
   * Anything else written there is dropped, as a kernel would refuse it. */
  private routeOut(pkt: Uint8Array): void {
    const gso = pkt[1] & 0x7f;
    const gsoSize = pkt[4] | (pkt[5] << 8);
    const ip = 10;
    if (pkt.length < ip + 28 || pkt[ip] !== 0x45 || pkt[ip + 9] !== 17 || pkt[ip + 8] < 2) return;
    if (((pkt[ip + 2] << 8) | pkt[ip + 3]) !== pkt.length - ip || ((pkt[ip + 24] << 8) | pkt[ip + 25]) !== pkt.length - ip - 20) return;
    const payload = pkt.length - ip - 28;
    const size = gso === 5 ? gsoSize : gso === 0 ? payload : -1;
    if (size <= 0 || (gso === 5 && payload <= gsoSize)) return;
    const id0 = (pkt[ip + 4] << 8) | pkt[ip + 5];
    for (let k = 0, at = ip + 28; at < pkt.length; k++, at += size) {
      const n = Math.min(size, pkt.length - at);
      const d = new Uint8Array(28 + n);
      d.set(pkt.subarray(ip, ip + 28), 0);
      d.set(pkt.subarray(at, at + n), 28);
      d[2] = (28 + n) >> 8;
      d[3] = (28 + n) & 0xff;
      d[4] = ((id0 + k) >> 8) & 0xff;
      d[5] = (id0 + k) & 0xff;
      d[8] -= 1;
      d[10] = 0;
      d[11] = 0;
      const ic = ~sum16(d, 0, 20, 0) & 0xffff;
      d[10] = ic >> 8;
      d[11] = ic & 0xff;
      d[24] = (8 + n) >> 8;
      d[25] = (8 + n) & 0xff;
      if ((pkt[0] & 1) !== 0) {
        // As the kernel does: the field's pseudo-header sum moved from the whole UDP length to
        // this datagram's, then the checksum completed over the UDP header and payload.
        const whole = (pkt[ip + 24] << 8) | pkt[ip + 25];
        const adj = sum16(d, 0, 0, ((d[26] << 8) | d[27]) + (~whole & 0xffff) + 8 + n);
        d[26] = adj >> 8;
        d[27] = adj & 0xff;
        let c = ~sum16(d, 20, 8 + n, 0) & 0xffff;
        if (c === 0) c = 0xffff;
        d[26] = c >> 8;
        d[27] = c & 0xff;
      }
      this.sent.push({ data: d, dst: ((d[16] << 24) | (d[17] << 16) | (d[18] << 8) | d[19]) >>> 0 });
    }
  }

  epollCreate(): number {
    const fd = this.nextFd++;
    this.epolls.set(fd, new Set());
    return fd;
  }

  epollAdd(ep: number, fd: number): void {
    this.epolls.get(ep)?.add(fd);
  }

  epollDel(ep: number, fd: number): void {
    this.epolls.get(ep)?.delete(fd);
  }

  epollWait(ep: number, fds: Int32Array, _timeoutMs: number): number {
    let n = 0;
    for (const fd of this.epolls.get(ep) ?? []) {
      if (n === fds.length) break;
      const q = this.queues.get(fd);
      const readable = q !== undefined ? q.rx.length > 0 || this.devices.get(q.dev)?.gone !== false : (this.udp.get(fd)?.length ?? 0) > 0;
      if (readable) fds[n++] = fd;
    }
    return n;
  }

  setAffinity(_cpus: number[]): void {}

  /** The last setSched call of any thread (test control); the fake keeps no per-thread state. */
  sched: { batch: boolean; sliceNs: number } | null = null;

  setSched(batch: boolean, sliceNs: number): number {
    this.sched = { batch, sliceNs };
    return sliceNs;
  }

  /** Exited children waiting to be collected, in the kernel's order (test control). */
  readonly zombies: number[] = [];

  reapOrphans(ours: Int32Array): number {
    let n = 0;
    while (n < 1024 && this.zombies.length > 0 && !ours.includes(this.zombies[0])) {
      this.zombies.shift();
      n++;
    }
    return n;
  }
}

/** A symmetric hash of an IP packet's addresses (the kernel's queue choice is per flow). */
function flowHash(p: Uint8Array): number {
  const v = p[0] >> 4;
  const [a, b] = v === 6 ? [8, 24] : [12, 16];
  const w = v === 6 ? 16 : 4;
  let h = 0;
  for (let i = 0; i < w; i++) h = (h + p[a + i] + p[b + i]) | 0;
  return h >>> 0;
}

/** The folded 16-bit one's complement sum of b[off, off+len), added to `init`. */
function sum16(b: Uint8Array, off: number, len: number, init: number): number {
  let s = init;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
