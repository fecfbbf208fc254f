// One phase of an emulator run: send (paced per batch), receive and verify, then settle until
// every packet came back or the settle time ran out. One thread does both directions: between
// batches the loop drains the receive socket and sleeps (epoll_wait for waits of a millisecond
// or more, so returns wake it; Atomics.wait for sub-millisecond gaps). It runs in slices of a
// few tens of milliseconds and yields to the event loop between them, so signals, timers and
// progress callbacks keep working. Contract: bounded by the phase's packet target and its time
// budget; allocates nothing per packet (progress snapshots allocate, once per interval).

import type { NativeAddon } from '../io/native';
import { endpointNames } from '../wire/eni';
import { BAD_SLOTS, Bad, type Verifier } from './verifier';
import type { EmulatorOptions } from './options';
import type { PhaseReport, ProgressEndpoint, ProgressSnapshot } from './reports';
import type { Rx } from './receiver';
import type { Sender } from './sender';

/** How long one synchronous slice of the loop runs before yielding to the event loop. */
const SLICE_MS = 25;
/** A paced sender that fell behind catches up by at most this much (bounded burst). */
const MAX_BACKLOG_MS = 5;

/** The per-phase send/receive/settle loop. */
export class Loop {
  private readonly fds = new Int32Array(4);
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));
  private nextProgress: number;
  private lastProgress: number;
  private lastSent = 0;
  private lastVerified = 0;
  private readonly names: Array<{ gwi: string; hex: string }>;

  constructor(
    private readonly n: NativeAddon,
    private readonly ep: number,
    private readonly raw: number,
    private readonly o: EmulatorOptions,
    private readonly t0: number,
    private readonly sent: Float64Array,
    private readonly v: Verifier,
    private readonly rx: Rx,
    private readonly sender: Sender,
    private readonly epOf: Int32Array,
    private readonly stopped: () => boolean,
  ) {
    this.names = v.plan.endpoints.map((e) => endpointNames(e));
    this.lastProgress = t0;
    this.nextProgress = o.progressMs > 0 ? t0 + o.progressMs : Infinity;
  }

  private totalSent(): number {
    let s = 0;
    for (let e = 0; e < this.sent.length; e++) s += this.sent[e];
    return s;
  }

  async phase(phase: number, budgetMs: number, batch: number): Promise<PhaseReport> {
    const o = this.o;
    const sender = this.sender;
    const v = this.v;
    const target = this.v.plan.count * o.packetsPerFlow;
    const msPerPkt = o.rate > 0 ? 1000 / o.rate : 0;
    const sentBefore = this.totalSent();
    let assigned = 0;
    let phaseSent = 0;
    const start = performance.now();
    const sendDeadline = start + budgetMs;
    let due = start;
    let sending = true;
    let sendEnd = start;
    let sliceStart = start;
    for (;;) {
      let t = performance.now();
      if (sending) {
        if (sender.pending > 0) {
          const k = sender.flush(this.n, this.raw, this.sent, this.epOf);
          phaseSent += k;
          // Send queue full: give the kernel a moment rather than spinning on sendmmsg.
          if (k === 0 && sender.pending > 0) this.sleep(0.05);
        } else if (assigned < target && t >= due) {
          // Random-ENI packets go first and do not count towards the good target.
          const k = Math.min(batch, target - assigned + (sender.extras === null ? 0 : sender.extras.randomLeft));
          assigned += sender.fill(k);
          due += k * msPerPkt;
          if (due < t - MAX_BACKLOG_MS) due = t - MAX_BACKLOG_MS;
          phaseSent += sender.flush(this.n, this.raw, this.sent, this.epOf);
        }
        if ((assigned >= target && sender.pending === 0) || t >= sendDeadline || this.stopped()) {
          sending = false;
          sender.dropPending();
          sendEnd = performance.now();
        }
      }
      const got = this.rx.drain(8);
      t = performance.now();
      if (!sending && (v.phaseVerified >= phaseSent || t - sendEnd >= o.settleMs)) break;
      if (t >= this.nextProgress) this.progress(phase, t);
      if (got === 0) {
        // Idle until the next batch is due (sending) or the settle time ends.
        let wait = sending ? (sender.pending > 0 ? 0 : due - t) : sendEnd + o.settleMs - t;
        if (this.nextProgress - t < wait) wait = this.nextProgress - t;
        if (wait >= 1) this.n.epollWait(this.ep, this.fds, Math.min(20, Math.floor(wait)));
        else if (wait > 0.02) this.sleep(wait);
      }
      if (t - sliceStart >= SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    }
    const end = performance.now();
    const sentInPhase = this.totalSent() - sentBefore;
    return {
      phase,
      sent: sentInPhase,
      verified: v.phaseVerified,
      lost: Math.max(0, sentInPhase - v.phaseVerified),
      sendMs: Math.round(sendEnd - start),
      settleMs: Math.round(end - sendEnd),
    };
  }

  private sleep(ms: number): void {
    Atomics.wait(this.sleepCell, 0, 0, ms);
  }

  private progress(phase: number, t: number): void {
    const v = this.v;
    let returned = 0;
    let verified = 0;
    let bad = 0;
    const endpoints: ProgressEndpoint[] = [];
    for (let e = 0; e <= v.endpointCount; e++) {
      returned += v.returned[e];
      verified += v.verified[e];
      let epBad = 0;
      for (let r = 1; r < BAD_SLOTS; r++) if (r !== Bad.REORDERED) epBad += v.bad[e * BAD_SLOTS + r];
      bad += epBad;
      if (e < v.endpointCount) {
        endpoints.push({ eni: this.names[e].hex, name: this.names[e].gwi, sent: this.sent[e], returned: v.returned[e], verified: v.verified[e], bad: epBad });
      }
    }
    const sent = this.totalSent();
    const dt = (t - this.lastProgress) / 1000;
    const snap: ProgressSnapshot = {
      phase,
      elapsedMs: Math.round(t - this.t0),
      sent,
      returned,
      verified,
      bad,
      outstanding: sent - verified,
      sentPps: dt > 0 ? Math.round((sent - this.lastSent) / dt) : 0,
      verifiedPps: dt > 0 ? Math.round((verified - this.lastVerified) / dt) : 0,
      endpoints,
    };
    this.lastProgress = t;
    this.lastSent = sent;
    this.lastVerified = verified;
    this.nextProgress = t + this.o.progressMs;
    this.o.onProgress?.(snap);
  }
}
