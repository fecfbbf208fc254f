// The contract between TypeScript and the C addon (src/native/gwlbtun.c).
//
// The addon is syscall shims only: no packet is parsed or built in C. Every call that moves
// packets takes preallocated memory (a Uint8Array of fixed-size slots plus an Int32Array of
// per-packet metadata) and handles a whole batch, so the JS/C boundary is crossed once per
// batch, not once per packet. All descriptors are non-blocking and close-on-exec.
//
// Errors: calls that set something up throw an Error whose `code` is the errno name
// ('EPERM', 'EADDRINUSE', ...) and whose message names the call, e.g.
// "udpOpen(6081): bind: Address already in use". Per-packet I/O calls never throw for
// I/O errors: they return counts, and a negative return is -errno (see each call).

import * as path from 'node:path';
import { resolveAddon } from './addon';

/** IPv4 addresses cross the boundary as unsigned 32-bit numbers, most significant byte first
 * (198.18.0.1 is 0xc6120001). */
export type Ip4 = number;

// Metadata layouts: per packet, STRIDE Int32 cells; the other names are cell offsets in a stride.
/** udpRecv: payload length, source IPv4, source port, destination IPv4 (IP_PKTINFO), flags. */
export const UDP_META_STRIDE = 5;
export const UDP_META_LEN = 0;
export const UDP_META_SRC = 1;
export const UDP_META_SPORT = 2;
export const UDP_META_DST = 3;
export const UDP_META_FLAGS = 4;
/** UDP_META_FLAGS bit: the datagram was longer than its slot (truncated). */
export const UDP_FLAG_TRUNCATED = 1;
/** rawSend: offset of the IPv4 packet in buf, its length, destination IPv4. */
export const RAW_META_STRIDE = 3;
export const RAW_META_OFF = 0;
export const RAW_META_LEN = 1;
export const RAW_META_DST = 2;
/** tunWrite: descriptor, offset in buf, length (replaced by -errno when the write failed). */
export const TUNW_META_STRIDE = 3;
export const TUNW_META_FD = 0;
export const TUNW_META_OFF = 1;
export const TUNW_META_LEN = 2;

export interface NativeAddon {
  /** Open one queue of the TUN device `name` (IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE), creating
   * the device if it does not exist. Calling it again with the same name attaches another queue.
   * The device disappears when its last queue is closed, unless it was made persistent
   * (tunSetPersist); a persistent device is attached to again by the same call (same name, same
   * flags: TUNSETIFF attaches a queue to an existing persistent multi-queue device).
   * vnetHdr: IFF_VNET_HDR too, so every packet read or written carries a 10-byte virtio_net_hdr
   * in front (src/wire/virtio.ts; offloads, src/io/offload.ts). Every queue of a device must be
   * opened alike. */
  tunOpen(name: string, vnetHdr?: boolean): number;
  /** TUNSETOFFLOAD(flags) on a queue (the setting is the device's): what the kernel may hand
   * over unfinished (TUN_F_* in src/wire/virtio.ts). Returns 0, or the errno (EINVAL: a flag this
   * kernel does not know) -- never throws for that, so features are probed by trying. */
  tunSetOffload(fd: number, flags: number): number;
  /** Open one queue of the TAP device `name` (IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE |
   * IFF_VNET_HDR, creating it), with virtio headers of vnetHdrSize bytes (TUNSETVNETHDRSZ, 10..64).
   * Frames written to it (tunWrite) enter the kernel as if received on the device. The device
   * disappears with its last queue. */
  tapOpen(name: string, vnetHdrSize: number): number;
  /** TUNSETQUEUE: attach (IFF_ATTACH_QUEUE) or detach (IFF_DETACH_QUEUE) the queue `fd`. A
   * detached queue stays open and keeps its device alive, but the kernel queues nothing on it:
   * a dead worker's queues are detached so that its share of returns goes to the live ones. */
  tunSetQueue(fd: number, attach: boolean): void;
  /** TUNSETPERSIST on a queue (the setting is the device's): a persistent device outlives its
   * last queue (a crash of gwlbtun leaves it for the next process to adopt:
   * src/control/endpoints.ts); cleared before the last queue closes, the device goes with it as
   * usual. Throws (EBADFD: the device is gone). */
  tunSetPersist(fd: number, on: boolean): void;
  /** Set the MTU and (when txqueuelen > 0) the transmit queue length of interface `name`, then
   * bring it up (SIOCSIFMTU, SIOCSIFTXQLEN, SIOCSIFFLAGS |= IFF_UP). */
  linkSetup(name: string, mtu: number, txqueuelen: number): void;
  /** if_nametoindex(name): 0 when there is no such interface. */
  ifIndex(name: string): number;
  /** close(2). Ignores EBADF. */
  close(fd: number): void;
  /** FD_CLOEXEC on a descriptor another process passed (a hand-over, src/control/handover.ts),
   * so that hooks do not inherit it. Throws (EBADF) when it is not open. */
  setCloexec(fd: number): void;
  /** One datagram with `state` (e.g. "READY=1") to systemd's notification socket `path` (the
   * NOTIFY_SOCKET value: a path, or '@' and an abstract name), from this process. Returns 0 or
   * -errno (-EINVAL: an empty or too long path or state). */
  sdNotify(path: string, state: string): number;

  /** UDP/IPv4 socket bound to 0.0.0.0:port, SO_REUSEPORT when reusePort (no SO_REUSEADDR: on
   * UDP it would let a second socket share the port silently),
   * IP_PKTINFO on, SO_RCVBUF = rcvbuf (SO_RCVBUFFORCE first, so root can exceed rmem_max;
   * 0 leaves the default). */
  udpOpen(port: number, rcvbuf: number, reusePort: boolean): number;
  /** recvmmsg(MSG_DONTWAIT) of up to maxPkts datagrams. Datagram i is stored at
   * buf[i*slotSize ...] (its UDP payload only). meta[i*5 + k]: k=0 payload length,
   * k=1 source IPv4, k=2 source port, k=3 destination IPv4 of the packet (IP_PKTINFO ipi_addr),
   * k=4 flags (bit 0: truncated, the datagram was longer than slotSize).
   * Returns the number received (0 when nothing is queued) or -errno. */
  udpRecv(fd: number, buf: Uint8Array, slotSize: number, maxPkts: number, meta: Int32Array): number;

  /** Raw IPv4 socket (AF_INET, SOCK_RAW, IPPROTO_RAW: the caller builds the IPv4 header),
   * SO_SNDBUF = sndbuf (SO_SNDBUFFORCE first; 0 leaves the default). */
  rawOpen(sndbuf: number): number;
  /** sendmmsg of `count` packets. meta[i*3 + k]: k=0 offset of the IPv4 packet in buf,
   * k=1 its length, k=2 destination IPv4 (the sockaddr). status.length must be >= count.
   * A datagram the kernel refuses alone (EPERM from a firewall rule, EMSGSIZE, EHOSTUNREACH...)
   * gets status[i] = errno and the batch goes on after it; a full send queue (EAGAIN, ENOBUFS)
   * stops the batch. Returns `done`, the number of leading datagrams dealt with: for i < done,
   * status[i] is 0 (sent) or the errno that datagram failed with; datagrams done..count-1 were
   * not sent because the queue was full, and their status holds that errno (EAGAIN/ENOBUFS). */
  rawSend(fd: number, buf: Uint8Array, meta: Int32Array, count: number, status: Int32Array): number;

  /** read(2) packets from a TUN queue until it would block or maxPkts are read. Packet k goes
   * to buf[(firstSlot+k)*slotSize + headroom ...], at most slotSize-headroom bytes, and its
   * length to lens[firstSlot+k]. Returns the number read, or -errno when the first read fails
   * with something other than EAGAIN (EBADFD/EIO: the device is gone). */
  tunRead(fd: number, buf: Uint8Array, slotSize: number, headroom: number, firstSlot: number,
    maxPkts: number, lens: Int32Array): number;
  /** write(2) `count` packets, each to its own descriptor. meta[i*3 + k]: k=0 fd, k=1 offset in
   * buf, k=2 length. A packet whose write fails gets meta[i*3+2] = -errno (EAGAIN when the
   * queue is full). Returns the number written. */
  tunWrite(buf: Uint8Array, meta: Int32Array, count: number): number;

  /** epoll_create1(EPOLL_CLOEXEC). */
  epollCreate(): number;
  /** epoll_ctl(ADD, fd, EPOLLIN) with data.fd = fd. */
  epollAdd(ep: number, fd: number): void;
  /** epoll_ctl(DEL, fd). Ignores ENOENT/EBADF. */
  epollDel(ep: number, fd: number): void;
  /** epoll_wait for at most timeoutMs (0 = poll); ready descriptors go to fds[0..n-1].
   * Returns n (0 on timeout or EINTR). */
  epollWait(ep: number, fds: Int32Array, timeoutMs: number): number;
  /** CLOCK_MONOTONIC in milliseconds (monoMs()'s clock) into out[0]; allocates nothing, where
   * performance.now() allocates a little every call (src/dataplane/loop.ts reads it twice a turn). */
  monoInto(out: Float64Array): void;

  /** sched_setaffinity of the calling thread to the given CPUs. */
  setAffinity(cpus: number[]): void;
  /** The calling thread's scheduling policy: SCHED_BATCH (batch) or SCHED_OTHER, nice kept, and
   * with sliceNs > 0 its EEVDF time slice (Linux 6.12+, ignored before). Returns the slice in
   * effect in ns (0 where the kernel reports none). src/io/sched.ts has the design. */
  setSched(batch: boolean, sliceNs: number): number;

  /** Collect the exit status of exited children that are not in `ours` (for PID 1: orphans
   * re-parented to it; src/control/reaper.ts). Loop: waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)
   * peeks at an exited child without collecting it; a PID found in `ours` (a child that Node's
   * child_process collects itself, by PID) ends the call, any other is collected with
   * waitpid(pid, WNOHANG). At most 1,024 per call. Returns how many were collected; never
   * throws for wait errors (ECHILD: no children at all). */
  reapOrphans(ours: Int32Array): number;
  /** The device the kernel's route to `dst` leaves through (`ip route get dst`: one
   * RTM_GETROUTE on a netlink socket), '' when there is none. Setup-time call (the main thread's
   * egress check, src/control/egress.ts), never on the data path. */
  routeDev(dst: Ip4): string;
  /** The driver (ETHTOOL_GDRVINFO; '' when the device answers none, e.g. lo) and the names of the
   * active features (`ethtool -k` names: 'tx-udp-segmentation', ...) of interface `name`. Throws
   * ENODEV when there is no such interface. Setup-time call, like routeDev. */
  linkOffloads(name: string): LinkOffloads;
}

/** What linkOffloads returns. */
export interface LinkOffloads {
  driver: string;
  features: string[];
}

let loaded: NativeAddon | undefined;

/** The installation root: dist/src/io/native.js -> <root>. */
export const INSTALL_ROOT = path.resolve(__dirname, '..', '..', '..');

/** The addon, loaded once per thread: build/gwlbtun.node when it was compiled here for this CPU,
 * else the release's prebuilds/linux-<arch>/gwlbtun.node (src/io/addon.ts). Throws one line
 * saying what was tried when neither fits. */
export function native(): NativeAddon {
  if (loaded === undefined) {
    const file = resolveAddon(INSTALL_ROOT);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(file) as NativeAddon;
  }
  return loaded;
}

/** 198.18.0.1 -> 0xc6120001 */
export function ip4FromString(s: string): Ip4 {
  const p = s.split('.');
  if (p.length !== 4) throw new Error(`not an IPv4 address: ${s}`);
  let v = 0;
  for (const part of p) {
    const n = Number(part);
    if (!/^\d{1,3}$/.test(part) || n > 255) throw new Error(`not an IPv4 address: ${s}`);
    v = v * 256 + n;
  }
  return v;
}

/** 0xc6120001 -> '198.18.0.1' */
export function ip4ToString(v: Ip4): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}
