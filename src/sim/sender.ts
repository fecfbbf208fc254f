// The emulator's send side: fills a batch of slots with the next packets (good traffic round
// robin over the flows, an extra packet from extras.ts when one is due) and hands the batch to
// the raw socket with one sendmmsg. Contract: every buffer is allocated in the constructor;
// fill() and flush() allocate nothing. A full send queue keeps the unsent rest pending for the
// next flush; a datagram the kernel refuses alone is counted in sendErrors and skipped.

import type { NativeAddon } from '../io/native';
import { type FlowPlan, writeSeq } from './flows';
import type { Extras } from './extras';

/** Builds and sends batches of packets. Good traffic is round-robin over the flows; extra
 * packets (extras.ts) take a slot when one is due, recorded as slotFlow = -1 - kind so that
 * the send accounting counts them per kind rather than per flow. */
export class Sender {
  readonly slotSize: number;
  readonly buf: Buffer;
  readonly meta: Int32Array;
  /** Flow of each batch slot (index into plan), for the sent counters. */
  readonly slotFlow: Int32Array;
  private readonly status: Int32Array;
  private readonly tmplBuf: Buffer;
  private rr = 0;
  /** Good packets since the last malformed one. */
  private goodSince = 0;
  /** Packets prepared but not yet accepted by the kernel: meta[0 .. pending*3). */
  pending = 0;
  sendErrors = 0;
  lastErrno = 0;

  constructor(
    private readonly plan: FlowPlan,
    private readonly nextSeq: Float64Array,
    readonly batchMax: number,
    private readonly dstIp: number,
    readonly extras: Extras | null = null,
  ) {
    this.slotSize = (Math.max(plan.maxPacket, extras === null ? 0 : extras.maxPacket) + 63) & ~63;
    this.buf = Buffer.alloc(this.slotSize * batchMax);
    this.meta = new Int32Array(batchMax * 3);
    this.status = new Int32Array(batchMax);
    this.slotFlow = new Int32Array(batchMax);
    this.tmplBuf = Buffer.from(plan.tmpl.buffer, plan.tmpl.byteOffset, plan.tmpl.byteLength);
  }

  /** Prepare n (<= batchMax) packets; only when nothing is pending. Returns how many of them are
   * good packets (the rest are extras). */
  fill(n: number): number {
    let good = 0;
    for (let i = 0; i < n; i++) good += this.fillSlot(i);
    this.pending = n;
    return good;
  }

  private fillSlot(i: number): number {
    const x = this.extras;
    if (x !== null) {
      const off = i * this.slotSize;
      const k = x.next(this.buf, off, this.goodSince);
      if (k >= 0) {
        if (k < x.malformedKinds) this.goodSince = 0;
        this.meta[i * 3] = off;
        this.meta[i * 3 + 1] = x.lastLen;
        this.meta[i * 3 + 2] = this.dstIp | 0;
        this.slotFlow[i] = -1 - k;
        return 0;
      }
    }
    this.goodSince++;
    const plan = this.plan;
    const f = this.rr;
    this.rr = f + 1 === plan.count ? 0 : f + 1;
    const seq = this.nextSeq[f]++;
    const off = i * this.slotSize;
    const t = plan.tmplOff[f];
    this.tmplBuf.copy(this.buf, off, t, t + plan.tmplLen[f]);
    writeSeq(this.buf, off + plan.tmplSeqOff[f], seq >>> 0);
    this.meta[i * 3] = off;
    this.meta[i * 3 + 1] = plan.tmplLen[f];
    this.meta[i * 3 + 2] = this.dstIp | 0;
    this.slotFlow[i] = f;
    return 1;
  }

  /** sendmmsg the pending packets. Counts each accepted packet for its flow (or extra kind).
   * Returns the number accepted. A full send queue (EAGAIN/ENOBUFS) keeps the rest pending for
   * a retry; a packet refused alone is dropped (counted in sendErrors), so a persistent error
   * cannot wedge the loop. */
  flush(n: NativeAddon, fd: number, sentCount: Float64Array, epOf: Int32Array): number {
    if (this.pending === 0) return 0;
    const done = n.rawSend(fd, this.buf, this.meta, this.pending, this.status);
    let sent = 0;
    for (let i = 0; i < done; i++) {
      if (this.status[i] !== 0) {
        this.sendErrors++;
        this.lastErrno = this.status[i];
        continue;
      }
      sent++;
      const f = this.slotFlow[i];
      if (f >= 0) sentCount[epOf[f]]++;
      else this.extras!.sent[-1 - f]++;
    }
    const rest = this.pending - done;
    const from = done;
    if (rest > 0 && from > 0) {
      this.meta.copyWithin(0, from * 3, (from + rest) * 3);
      this.slotFlow.copyWithin(0, from, from + rest);
    }
    this.pending = rest;
    return sent;
  }

  /** Forget pending packets (the send deadline passed). Their sequence numbers stay handed out
   * but were never sent, so they are not counted anywhere. */
  dropPending(): void {
    this.pending = 0;
  }
}
