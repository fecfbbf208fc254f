// An appliance stand-in without TUN devices or kernel forwarding: every Geneve datagram that
// arrives on UDP 6081 goes straight back to its sender, as an appliance must return it
// (docs/protocol.md section 2): to (source IP, 6081), from the datagram's own source port, with the
// address it was sent to as the source IP, payload (Geneve header + inner) unchanged. The
// emulator verifies it with ttlDecrement 0. It is the ceiling of the raw-send path in the
// benchmark and lets the emulator be tested without the daemon.
//
// Zero-copy turnaround: datagrams are received 28 bytes into their slot, so the outer IPv4 + UDP
// headers are written in front of each payload in place and the same memory is handed to
// sendmmsg. No allocation per packet.

import { GENEVE_PORT } from '../wire/geneve';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../wire/outer';
import { native, NativeAddon } from '../io/native';

export interface ReflectorOptions {
  /** Stop after this many seconds. */
  durationS: number;
  port?: number;
  /** Datagrams per recvmmsg / sendmmsg. */
  batch?: number;
  rcvbuf?: number;
  sndbuf?: number;
}

export interface ReflectorStats {
  received: number;
  reflected: number;
  /** Too large for a slot (truncated) or not sent (send error other than a full queue). */
  dropped: number;
  /** Full send queue: retried, then dropped after RETRY_LIMIT attempts. */
  sendQueueFull: number;
  elapsedMs: number;
}

const SLOT = 9344; // > 28 + the largest UDP payload on a 9001-byte MTU
const RETRY_LIMIT = 200;
const SLICE_MS = 25;

export class Reflector {
  readonly stats: ReflectorStats = { received: 0, reflected: 0, dropped: 0, sendQueueFull: 0, elapsedMs: 0 };
  private readonly n: NativeAddon;
  private readonly udp: number;
  private readonly raw: number;
  private readonly ep: number;
  private readonly batch: number;
  private readonly mem: Uint8Array;
  private readonly rxView: Uint8Array;
  private readonly rxMeta: Int32Array;
  private readonly txMeta: Int32Array;
  private readonly status: Int32Array;
  private readonly fds = new Int32Array(4);
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));
  private stopRequested = false;
  private closed = false;

  /** Opens the sockets (in the namespace of this process); throws if it cannot. */
  constructor(private readonly o: ReflectorOptions) {
    this.n = native();
    this.batch = o.batch ?? 64;
    this.mem = new Uint8Array(SLOT * this.batch + OUTER_HEADER_LEN);
    // Slot i's payload lands at OUTER_HEADER_LEN + i*SLOT; its outer header goes at i*SLOT, in
    // the last 28 bytes of slot i-1's receive area, which a payload of at most
    // SLOT - OUTER_HEADER_LEN bytes never reaches (longer ones are dropped below).
    this.rxView = this.mem.subarray(OUTER_HEADER_LEN);
    this.rxMeta = new Int32Array(this.batch * 5);
    this.txMeta = new Int32Array(this.batch * 3);
    this.status = new Int32Array(this.batch);
    this.udp = this.n.udpOpen(o.port ?? GENEVE_PORT, o.rcvbuf ?? 32 << 20, false);
    let raw = -1;
    let ep = -1;
    try {
      raw = this.n.rawOpen(o.sndbuf ?? 8 << 20);
      ep = this.n.epollCreate();
      this.n.epollAdd(ep, this.udp);
    } catch (e) {
      if (raw >= 0) this.n.close(raw);
      this.n.close(this.udp);
      throw e;
    }
    this.raw = raw;
    this.ep = ep;
  }

  stop(): void {
    this.stopRequested = true;
  }

  /** Reflect until the duration passes or stop() is called; closes the sockets. */
  async run(): Promise<ReflectorStats> {
    const t0 = performance.now();
    const end = t0 + this.o.durationS * 1000;
    try {
      let sliceStart = t0;
      while (!this.stopRequested) {
        const t = performance.now();
        if (t >= end) break;
        if (this.step() === 0) this.n.epollWait(this.ep, this.fds, Math.max(0, Math.min(50, Math.ceil(end - t))));
        if (t - sliceStart >= SLICE_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
      }
    } finally {
      this.stats.elapsedMs = Math.round(performance.now() - t0);
      this.close();
    }
    return this.stats;
  }

  /** One receive batch turned around. Returns the number of datagrams received. */
  step(): number {
    const n = this.n;
    const k = n.udpRecv(this.udp, this.rxView, SLOT, this.batch, this.rxMeta);
    if (k <= 0) return 0;
    const rm = this.rxMeta;
    const tm = this.txMeta;
    let out = 0;
    for (let i = 0; i < k; i++) {
      const b = i * 5;
      const len = rm[b];
      if ((rm[b + 4] & 1) !== 0 || len > SLOT - OUTER_HEADER_LEN) {
        this.stats.dropped++;
        continue;
      }
      const off = i * SLOT;
      // Back to (source IP, 6081) from the address it was sent to, with its source port.
      writeOuterIpUdp(this.mem, off, rm[b + 3], rm[b + 1], rm[b + 2], GENEVE_PORT, len);
      tm[out * 3] = off;
      tm[out * 3 + 1] = len + OUTER_HEADER_LEN;
      tm[out * 3 + 2] = rm[b + 1];
      out++;
    }
    this.stats.received += k;
    this.send(out);
    return k;
  }

  private send(count: number): void {
    let from = 0;
    let tries = 0;
    while (from < count) {
      if (from > 0) this.txMeta.copyWithin(0, from * 3, count * 3);
      const left = count - from;
      const done = this.n.rawSend(this.raw, this.mem, this.txMeta, left, this.status);
      for (let i = 0; i < done; i++) {
        if (this.status[i] === 0) this.stats.reflected++;
        else this.stats.dropped++; // refused alone (a firewall rule, a route): not retried
      }
      count = left;
      from = done;
      if (from < count) {
        // The send queue is full (EAGAIN/ENOBUFS): wait a little and retry the rest.
        this.stats.sendQueueFull++;
        if (++tries > RETRY_LIMIT) {
          this.stats.dropped += count - from;
          return;
        }
        Atomics.wait(this.sleepCell, 0, 0, 0.05);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.n.close(this.ep);
    this.n.close(this.raw);
    this.n.close(this.udp);
  }
}
