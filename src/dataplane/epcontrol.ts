// The endpoint control of a worker: what the main thread tells it about endpoints (ToWorker
// messages, src/dataplane/messages.ts), applied between batches, and what it tells the main thread
// back when a queue fails.
//
//   'add'    the endpoint's gwi-/gwo- queues are polled; its held packets are delivered
//   'reject' the ENI is refused (limit reached, or its CREATE hook failed): held packets dropped,
//            the refusal remembered here for REJECT_MS (then the ENI is asked about again)
//   'remove' its queues are no longer polled, the entry is forgotten; 'removed' goes back
//   gone()   a queue failed (the device was deleted under us): 'gone' goes to the main thread
//
// Contract: drain() takes every waiting message once the shared sequence word says one is waiting
// (one Atomics.load per turn otherwise); nothing here runs per packet. The inbound path
// (src/dataplane/inbound.ts) owns the hold ring's release and the pending writes, which a message
// flushes before the endpoint's queues change.

import type { NativeAddon } from '../io/native';
import { CTRL_MSG_SEQ, type FromWorker, type ToWorker } from './messages';
import { REJECT_REASONS, ST_READY, ST_REJECTED, type LocalEndpoints } from './endpoints';
import type { InboundPath } from './inbound';

/** How long an ENI ID refused by the main thread stays refused here before it is asked again. */
export const REJECT_MS = 10_000;

export class EndpointControl {
  /** Monotonic ms of the current turn (set by the loop). */
  nowMs = 0;
  private seenSeq = 0;

  constructor(
    private readonly nat: NativeAddon,
    /** The worker's epoll descriptor. */
    private readonly ep: number,
    private readonly index: number,
    private readonly eps: LocalEndpoints,
    private readonly inbound: InboundPath,
    private readonly ctrl: Int32Array,
    private readonly post: (m: FromWorker) => void,
    /** The next control message waiting, or undefined. */
    private readonly receive: () => ToWorker | undefined,
  ) {}

  /** Applies every waiting message, when the sequence word moved since the last call. */
  drain(): void {
    const seq = Atomics.load(this.ctrl, CTRL_MSG_SEQ);
    if (seq === this.seenSeq) return;
    this.seenSeq = seq;
    for (let m = this.receive(); m !== undefined; m = this.receive()) this.handle(m);
  }

  handle(m: ToWorker): void {
    const eps = this.eps;
    const nat = this.nat;
    if (m.t === 'add') {
      let li = eps.find(m.hi, m.lo);
      if (li >= 0 && eps.state[li] === ST_READY && eps.gwi[li] === m.gwi) return; // already have it
      if (li < 0) li = eps.add(m.hi, m.lo, ST_READY, this.nowMs);
      if (li < 0) return; // cannot happen: the table holds more than maxEndpoints
      eps.state[li] = ST_READY;
      eps.slot[li] = m.slot;
      eps.epId[li] = m.epId;
      eps.gwi[li] = m.gwi;
      eps.gwo[li] = m.gwo;
      eps.bySlot[m.slot] = li;
      nat.epollAdd(this.ep, m.gwi);
      eps.byFd.set(m.gwi, li);
      if (m.gwo >= 0) {
        nat.epollAdd(this.ep, m.gwo);
        eps.byFd.set(m.gwo, li);
      }
      this.inbound.release(li, true, 0);
    } else if (m.t === 'reject') {
      let li = eps.find(m.hi, m.lo);
      if (li < 0) li = eps.add(m.hi, m.lo, ST_REJECTED, this.nowMs);
      if (li < 0) return;
      eps.state[li] = ST_REJECTED;
      eps.failed[li] = m.unlisted === true ? 2 : m.failed ? 1 : 0;
      eps.sinceMs[li] = this.nowMs;
      this.inbound.release(li, false, REJECT_REASONS[eps.failed[li]]);
    } else if (m.t === 'remove') {
      const li = eps.bySlot[m.slot];
      if (li >= 0) {
        this.inbound.flushWrites();
        for (const fd of [eps.gwi[li], eps.gwo[li]]) {
          if (fd >= 0 && eps.byFd.get(fd) === li) {
            nat.epollDel(this.ep, fd);
            eps.byFd.delete(fd);
          }
        }
        eps.bySlot[m.slot] = -1;
        eps.remove(li);
      }
      this.post({ t: 'removed', index: this.index, epId: m.epId });
    }
  }

  /** A queue of entry li failed (errno): the interface was deleted under us (or the queue broke).
   * Stop polling it and let the main thread tear the endpoint down; it will be re-created on its
   * next packet. */
  gone(fd: number, li: number, errno: number): void {
    this.nat.epollDel(this.ep, fd);
    this.eps.byFd.delete(fd);
    if (this.eps.state[li] === ST_READY) this.post({ t: 'gone', index: this.index, slot: this.eps.slot[li], errno });
  }

  /** Forget refusals after REJECT_MS, so an ENI refused at the limit is asked about again. */
  expire(): void {
    const eps = this.eps;
    for (let i = 0; i < eps.capacity; i++) {
      if (eps.state[i] === ST_REJECTED && this.nowMs - eps.sinceMs[i] > REJECT_MS && eps.held[i] === 0) eps.remove(i);
    }
  }
}
