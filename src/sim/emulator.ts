// The GWLB emulator as a library. It runs inside the GWLB network namespace (its sockets open in
// the namespace of the process): it sends real Geneve over UDP to the appliance through a raw
// socket, exactly as GWLB would (outer IPv4 + UDP built here, source port per flow), receives
// what the appliance sends back on UDP 6081 and verifies every packet (verifier.ts).
//
// One thread does both directions. Sending is paced per batch; between batches the loop drains
// the receive socket and sleeps (epoll_wait for waits of a millisecond or more, so returns wake
// it; Atomics.wait for sub-millisecond gaps, which epoll's millisecond timeout cannot express).
// The loop runs in slices of a few tens of milliseconds and yields to the event loop between
// them, so signals, timers and progress output keep working.

import { GENEVE_PORT } from '../wire/geneve';
import { endpointNames } from '../wire/eni';
import { native, NativeAddon } from '../io/native';
import { FlowPlan, SimFamily, SimProto, writeSeq } from './flows';
import { BAD_NAMES, BAD_SLOTS, Bad, Verifier } from './verifier';

export interface EmulatorOptions {
  gwlbIp: string;
  applianceIp: string;
  /** ENI IDs of the GWLB endpoints to emulate. */
  endpoints: bigint[];
  /** Flows per (endpoint, family, protocol). */
  flowsPerKind: number;
  families: SimFamily[];
  protos: SimProto[];
  /** Inner IP packet size in bytes (raised to the minimum a kind can carry: 16 payload bytes). */
  innerSize: number;
  /** Target send rate, packets/s, all flows together; 0 = as fast as possible. */
  rate: number;
  /** Packets per flow per phase (the packet bound of the send loop). */
  packetsPerFlow: number;
  /** Bound on the sending time of the whole run, seconds (split evenly across phases). */
  maxSeconds: number;
  /** After a phase's sending ends: wait at most this long for its packets to come back. */
  settleMs: number;
  /** TTL/hop-limit decrements expected on the way through the appliance (1 = kernel forwarding,
   * 0 = pass-through such as the reflector). */
  ttlDecrement: number;
  /** Number of phases; every new phase gives every flow a new cookie (same 5-tuple). */
  phases: number;
  onProgress?: (s: ProgressSnapshot) => void;
  /** Progress interval, ms (0 = no progress callbacks). */
  progressMs: number;
  /** First GWLB UDP source port (flow f uses firstPort + f). */
  firstPort?: number;
  /** SO_RCVBUF of the receive socket / SO_SNDBUF of the raw socket, bytes. */
  rcvbuf?: number;
  sndbuf?: number;
  /** Largest send batch (one sendmmsg). */
  batch?: number;
  /** Attachment ID per endpoint (default random). */
  attachments?: bigint[];
}

export const EMULATOR_DEFAULTS: EmulatorOptions = {
  gwlbIp: '198.18.0.1',
  applianceIp: '198.18.0.2',
  endpoints: [1n],
  flowsPerKind: 4,
  families: [4, 6],
  protos: ['tcp', 'udp', 'icmp'],
  innerSize: 256,
  rate: 10000,
  packetsPerFlow: 100,
  maxSeconds: 10,
  settleMs: 1000,
  ttlDecrement: 1,
  phases: 1,
  progressMs: 1000,
};

export interface Counts {
  sent: number;
  returned: number;
  verified: number;
  /** sent - verified, after settling. */
  lost: number;
  /** Non-zero reasons only (see verifier.ts Bad). `reordered` packets are also in `verified`. */
  bad: Record<string, number>;
}

export interface EndpointReport extends Counts {
  /** ENI ID, 17 hex digits. */
  eni: string;
  /** gwi-<base60> */
  name: string;
}

export interface PhaseReport {
  phase: number;
  sent: number;
  verified: number;
  lost: number;
  sendMs: number;
  settleMs: number;
}

export interface EmulatorReport {
  endpoints: EndpointReport[];
  /** Sums over endpoints, plus returns that cannot be attributed to an endpoint (unknown_port). */
  totals: Counts & { sendErrors: number };
  phases: PhaseReport[];
  flows: number;
  elapsedMs: number;
  /** Time spent sending (all phases), ms. */
  sendMs: number;
  /** Achieved send rate: totals.sent / sendMs. */
  pps: number;
  /** totals.verified / sendMs. */
  verifiedPps: number;
  /** True when stop() ended the run early. */
  stopped: boolean;
}

export interface ProgressSnapshot {
  phase: number;
  elapsedMs: number;
  sent: number;
  returned: number;
  verified: number;
  /** Bad returns (all reasons except reordered). */
  bad: number;
  /** sent - verified so far (in flight or lost). */
  outstanding: number;
  /** Rates over the last interval, packets/s. */
  sentPps: number;
  verifiedPps: number;
  /** The same counters per endpoint (bad: all reasons except reordered). */
  endpoints: ProgressEndpoint[];
}

export interface ProgressEndpoint {
  eni: string;
  name: string;
  sent: number;
  returned: number;
  verified: number;
  bad: number;
}

const RX_BATCH = 64;
/** Receive slot: more than the largest UDP payload on the 9001-byte-MTU veth. */
const RX_SLOT = 9216;
const EAGAIN = 11;
const ENOBUFS = 105;
/** How long one synchronous slice of the loop runs before yielding to the event loop. */
const SLICE_MS = 25;
/** A paced sender that fell behind catches up by at most this much (bounded burst). */
const MAX_BACKLOG_MS = 5;

/** Builds and sends batches of packets. Good traffic is round-robin over the flows.
 *
 * Extension point for malformed traffic: fillSlot() decides what goes into each batch slot.
 * A catalogue of malformed packets would add a schedule ("every Nth slot is malformed kind k"),
 * write that packet into the slot instead of a flow template, and record slotFlow = -1 - k so
 * that the send accounting counts it per kind rather than per flow; the verifier would then
 * expect nothing back for it. */
export class Sender {
  readonly slotSize: number;
  readonly buf: Buffer;
  readonly meta: Int32Array;
  /** Flow of each batch slot (index into plan), for the sent counters. */
  readonly slotFlow: Int32Array;
  private readonly status = new Int32Array(1);
  private readonly tmplBuf: Buffer;
  private rr = 0;
  /** Packets prepared but not yet accepted by the kernel: meta[0 .. pending*3). */
  pending = 0;
  sendErrors = 0;
  lastErrno = 0;

  constructor(
    private readonly plan: FlowPlan,
    private readonly nextSeq: Float64Array,
    readonly batchMax: number,
    private readonly dstIp: number,
  ) {
    this.slotSize = (plan.maxPacket + 63) & ~63;
    this.buf = Buffer.alloc(this.slotSize * batchMax);
    this.meta = new Int32Array(batchMax * 3);
    this.slotFlow = new Int32Array(batchMax);
    this.tmplBuf = Buffer.from(plan.tmpl.buffer, plan.tmpl.byteOffset, plan.tmpl.byteLength);
  }

  /** Prepare n (<= batchMax) packets; only when nothing is pending. */
  fill(n: number): void {
    for (let i = 0; i < n; i++) this.fillSlot(i);
    this.pending = n;
  }

  private fillSlot(i: number): void {
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
  }

  /** sendmmsg the pending packets. Calls onSent(flow) for each accepted packet. Returns the
   * number accepted. A full send queue (EAGAIN/ENOBUFS) keeps the rest pending for a retry;
   * any other error drops the packet it stopped at (counted in sendErrors) so a persistent
   * error cannot wedge the loop. */
  flush(n: NativeAddon, fd: number, sentCount: Float64Array, epOf: Int32Array): number {
    if (this.pending === 0) return 0;
    const k = n.rawSend(fd, this.buf, this.meta, this.pending, this.status);
    const sent = k > 0 ? k : 0;
    for (let i = 0; i < sent; i++) sentCount[epOf[this.slotFlow[i]]]++;
    let rest = this.pending - sent;
    let from = sent;
    if (rest > 0) {
      const err = this.status[0];
      if (err !== EAGAIN && err !== ENOBUFS) {
        this.sendErrors++;
        this.lastErrno = err;
        from++;
        rest--;
      }
    }
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

function check(cond: boolean, msg: string): void {
  if (!cond) throw new RangeError(msg);
}

/** Fill in defaults and validate. */
export function resolveOptions(o: Partial<EmulatorOptions>): EmulatorOptions {
  const r: EmulatorOptions = { ...EMULATOR_DEFAULTS, ...o };
  const posInt = (v: number) => Number.isInteger(v) && v >= 1;
  check(posInt(r.flowsPerKind), 'flowsPerKind must be an integer >= 1');
  check(Number.isFinite(r.rate) && r.rate >= 0, 'rate must be >= 0');
  check(posInt(r.packetsPerFlow), 'packetsPerFlow must be an integer >= 1');
  check(Number.isFinite(r.maxSeconds) && r.maxSeconds > 0, 'maxSeconds must be > 0');
  check(Number.isFinite(r.settleMs) && r.settleMs >= 0, 'settleMs must be >= 0');
  check(posInt(r.phases) && r.phases <= 1000, 'phases must be 1..1000');
  // Sequence numbers are 32 bits on the wire.
  check(r.packetsPerFlow * r.phases < 2 ** 32, 'packetsPerFlow * phases must stay below 2^32');
  check(Number.isFinite(r.progressMs) && r.progressMs >= 0, 'progressMs must be >= 0');
  check(r.batch === undefined || (posInt(r.batch) && r.batch <= 1024), 'batch must be 1..1024');
  check(r.families.every((f) => f === 4 || f === 6), 'families must be 4 and/or 6');
  check(r.protos.every((p) => p === 'tcp' || p === 'udp' || p === 'icmp'), 'protos must be tcp, udp, icmp');
  return r;
}

export class Emulator {
  readonly opts: EmulatorOptions;
  readonly plan: FlowPlan;
  readonly verifier: Verifier;
  /** Packets accepted by the kernel, per endpoint. */
  readonly sent: Float64Array;
  private stopRequested = false;

  constructor(options: Partial<EmulatorOptions>) {
    this.opts = resolveOptions(options);
    const o = this.opts;
    this.plan = new FlowPlan({
      gwlbIp: o.gwlbIp,
      applianceIp: o.applianceIp,
      endpoints: o.endpoints,
      flowsPerKind: o.flowsPerKind,
      families: o.families,
      protos: o.protos,
      innerSize: o.innerSize,
      ttlDecrement: o.ttlDecrement,
      firstPort: o.firstPort,
      attachments: o.attachments,
    });
    this.verifier = new Verifier(this.plan);
    this.sent = new Float64Array(this.plan.endpoints.length);
  }

  /** End the run early: the current phase stops sending, settles, and no further phase starts. */
  stop(): void {
    this.stopRequested = true;
  }

  async run(): Promise<EmulatorReport> {
    const o = this.opts;
    const n = native();
    const plan = this.plan;
    const v = this.verifier;
    const t0 = performance.now();
    const udp = n.udpOpen(GENEVE_PORT, o.rcvbuf ?? 32 << 20, false);
    let raw = -1;
    let ep = -1;
    const phases: PhaseReport[] = [];
    let sendErrors = 0;
    try {
      raw = n.rawOpen(o.sndbuf ?? 4 << 20);
      ep = n.epollCreate();
      n.epollAdd(ep, udp);
      // Batch size follows the rate: about 4 batches per millisecond at high rates, single
      // packets at low rates, so pacing stays smooth and bursts stay small.
      const batchMax = o.batch ?? 32;
      const batch = o.rate > 0 ? Math.min(batchMax, Math.max(1, Math.ceil(o.rate / 4000))) : batchMax;
      const sender = new Sender(plan, v.nextSeq, batchMax, plan.applianceIp);
      const rx = new Rx(n, udp, v);
      const loop = new Loop(n, ep, raw, o, t0, this.sent, v, rx, sender, plan.ep, () => this.stopRequested);
      const budget = (o.maxSeconds * 1000) / o.phases;
      for (let p = 1; p <= o.phases && !this.stopRequested; p++) {
        if (p > 1) plan.newCookies();
        v.beginPhase();
        phases.push(await loop.phase(p, budget, batch));
      }
      sendErrors = sender.sendErrors;
    } finally {
      if (ep >= 0) n.close(ep);
      if (raw >= 0) n.close(raw);
      n.close(udp);
    }
    return this.report(phases, performance.now() - t0, sendErrors);
  }

  /** The report from the counters as they are now. */
  report(phases: PhaseReport[], elapsedMs: number, sendErrors: number): EmulatorReport {
    const v = this.verifier;
    const ne = this.plan.endpoints.length;
    const counts = (sent: number, e: number): Counts => {
      const bad: Record<string, number> = {};
      for (let r = 1; r < BAD_SLOTS; r++) {
        const c = v.bad[e * BAD_SLOTS + r];
        if (c > 0) bad[BAD_NAMES[r]] = c;
      }
      return { sent, returned: v.returned[e], verified: v.verified[e], lost: Math.max(0, sent - v.verified[e]), bad };
    };
    const endpoints: EndpointReport[] = [];
    for (let e = 0; e < ne; e++) {
      const eni = this.plan.endpoints[e];
      endpoints.push({ eni: endpointNames(eni).hex, name: endpointNames(eni).gwi, ...counts(this.sent[e], e) });
    }
    const totals: Counts & { sendErrors: number } = { ...counts(0, ne), sendErrors };
    for (const e of endpoints) {
      totals.sent += e.sent;
      totals.returned += e.returned;
      totals.verified += e.verified;
      for (const [k, c] of Object.entries(e.bad)) totals.bad[k] = (totals.bad[k] ?? 0) + c;
    }
    totals.lost = Math.max(0, totals.sent - totals.verified);
    const sendMs = phases.reduce((a, p) => a + p.sendMs, 0);
    return {
      endpoints,
      totals,
      phases,
      flows: this.plan.count,
      elapsedMs: Math.round(elapsedMs),
      sendMs: Math.round(sendMs),
      pps: sendMs > 0 ? Math.round((totals.sent * 1000) / sendMs) : 0,
      verifiedPps: sendMs > 0 ? Math.round((totals.verified * 1000) / sendMs) : 0,
      stopped: this.stopRequested,
    };
  }
}

/** Receive side: drains the socket in batches into preallocated slots and verifies each. */
class Rx {
  private readonly buf = Buffer.alloc(RX_BATCH * RX_SLOT);
  private readonly meta = new Int32Array(RX_BATCH * 5);

  constructor(
    private readonly n: NativeAddon,
    private readonly fd: number,
    private readonly v: Verifier,
  ) {}

  /** Up to `rounds` recvmmsg calls; returns the number of datagrams processed. */
  drain(rounds: number): number {
    let total = 0;
    const m = this.meta;
    for (let r = 0; r < rounds; r++) {
      const k = this.n.udpRecv(this.fd, this.buf, RX_SLOT, RX_BATCH, m);
      if (k < 0) throw new Error(`udpRecv failed: errno ${-k}`);
      for (let i = 0; i < k; i++) {
        const b = i * 5;
        this.v.verify(this.buf, i * RX_SLOT, m[b], m[b + 1], m[b + 2], m[b + 3], (m[b + 4] & 1) !== 0);
      }
      total += k;
      if (k < RX_BATCH) break;
    }
    return total;
  }
}

/** The per-phase send/receive/settle loop. */
class Loop {
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
          const k = Math.min(batch, target - assigned);
          sender.fill(k);
          assigned += k;
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
