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

import { randomBytes } from 'node:crypto';
import { GENEVE_PORT, writeGeneveHeader } from '../wire/geneve';
import { endpointNames } from '../wire/eni';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../wire/outer';
import { buildInnerPacket } from '../wire/build';
import { native, NativeAddon } from '../io/native';
import { FlowPlan, SimFamily, SimProto, writeSeq } from './flows';
import { BAD_NAMES, BAD_SLOTS, Bad, Verifier } from './verifier';
import { malformedEni, malformedIndex, malformedKind, RANDOM_ENI_KIND } from './malformed';

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
  /** Every endpoint sends the same inner packets (overlapping customer CIDRs); see FlowPlanOptions. */
  sameInner?: boolean;
  /** Malformed kinds (src/sim/malformed.ts names) interleaved with the good traffic; default none. */
  malformed?: string[];
  /** One malformed packet after every this many good packets (default 10). */
  malformedEvery?: number;
  /** Valid packets, each with a new random ENI ID (an endpoint flood), sent before the good
   * traffic of the first phase, paced like all packets (rate 0: back to back). Default 0. */
  randomEnis?: number;
  /** Shift of the flows' inner addresses and ports: runs with different offsets use different
   * 5-tuples (flow churn across runs). Default 0. */
  flowOffset?: number;
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

/** What was sent besides the good traffic (malformed kinds, random ENI IDs). */
export interface ExtrasReport {
  /** One malformed packet after every `every` good packets. */
  every: number;
  /** Per kind: packets accepted by the kernel. */
  sent: Record<string, number>;
  /** Per kind: datagrams that came back from the appliance (must be 0 for malformed kinds). */
  returned: Record<string, number>;
  /** Per malformed kind: the drop reason it must be counted under. */
  reasons: Record<string, string>;
  /** Per malformed kind: the ENI ID it carries (17 hex digits; no good flow uses it). */
  enis: Record<string, string>;
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
  /** Present when malformed kinds or random ENI IDs were sent. */
  extras?: ExtrasReport;
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
/** How long one synchronous slice of the loop runs before yielding to the event loop. */
const SLICE_MS = 25;
/** A paced sender that fell behind catches up by at most this much (bounded burst). */
const MAX_BACKLOG_MS = 5;

/** Packets sent besides the good traffic: the malformed catalogue (src/sim/malformed.ts),
 * interleaved one after every `every` good packets, cycling over the chosen kinds and over each
 * kind's variants; and valid packets with random ENI IDs, sent first. Built once at setup as
 * complete outer IPv4 + UDP packets; the sender copies one into a batch slot (no allocation).
 *
 * Each kind has its own GWLB source port(s), none used by a good flow: anything the appliance
 * sends back for an extra packet is attributed to its kind (`returned`), never to a flow. */
export class Extras {
  /** Kind names; malformed kinds first, the random-ENI kind last when present. */
  readonly names: string[] = [];
  readonly reasons: string[] = [];
  readonly enis: string[] = [];
  readonly malformedKinds: number;
  readonly every: number;
  readonly sent: Float64Array;
  readonly returned: Float64Array;
  /** GWLB source port -> kind index, -1 for ports of good flows or unused. */
  readonly portKind = new Int16Array(65536).fill(-1);
  readonly maxPacket: number;
  /** Random-ENI packets still to send. */
  randomLeft: number;
  private readonly tmpl: Buffer;
  private readonly vOff: Int32Array;
  private readonly vLen: Int32Array;
  private readonly kFirst: Int32Array;
  private readonly kCount: Int32Array;
  private readonly kNext: Int32Array;
  private nextKind = 0;
  // Random ENI IDs: one template, the ENI (8 bytes) and the UDP source port patched per packet.
  private readonly rEni: Uint32Array;
  private rIdx = 0;
  private readonly rOff: number;
  private readonly rLen: number;
  private readonly rEniAt: number;
  private readonly rPorts: Int32Array;

  constructor(plan: FlowPlan, malformed: string[], every: number, randomEnis: number) {
    const kinds = malformed.map((name) => malformedKind(name));
    this.malformedKinds = kinds.length;
    this.every = every;
    this.randomLeft = randomEnis;
    const nk = kinds.length + (randomEnis > 0 ? 1 : 0);
    this.sent = new Float64Array(nk);
    this.returned = new Float64Array(nk);
    // Ports no good flow uses, lowest first (flows use firstPort .. firstPort + count - 1).
    const free: number[] = [];
    for (let p = 1024; p < 65536 && free.length < kinds.length + 256; p++) if (plan.flowOfPort(p) < 0) free.push(p);
    if (free.length < kinds.length + (randomEnis > 0 ? 1 : 0)) throw new RangeError('no free GWLB ports left for the extra packets');
    const attachment = plan.attachments[0];
    const packets: Uint8Array[] = [];
    this.kFirst = new Int32Array(nk);
    this.kCount = new Int32Array(nk);
    this.kNext = new Int32Array(nk);
    kinds.forEach((k, i) => {
      const eni = malformedEni(malformedIndex(k.name), plan.endpoints);
      this.names.push(k.name);
      this.reasons.push(k.reason);
      this.enis.push(endpointNames(eni).hex);
      const port = free[i];
      this.portKind[port] = i;
      this.kFirst[i] = packets.length;
      for (const payload of k.build(eni, attachment)) packets.push(outer(plan, port, payload));
      this.kCount[i] = packets.length - this.kFirst[i];
    });
    // Random ENI IDs: fresh 64-bit values, none equal to a good or malformed one, no repeats.
    const taken = new Set<string>([...plan.endpoints, ...kinds.map((k) => malformedEni(malformedIndex(k.name), plan.endpoints))].map(String));
    this.rEni = new Uint32Array(2 * randomEnis);
    const raw = randomBytes(8 * randomEnis);
    for (let i = 0; i < randomEnis; i++) {
      let v = raw.readBigUInt64BE(8 * i);
      while (taken.has(String(v))) v = randomBytes(8).readBigUInt64BE(0);
      taken.add(String(v));
      this.rEni[2 * i] = Number(v >> 32n);
      this.rEni[2 * i + 1] = Number(v & 0xffffffffn);
    }
    const rk = kinds.length;
    this.rPorts = new Int32Array(free.slice(kinds.length, kinds.length + 256));
    if (randomEnis > 0) {
      this.names.push(RANDOM_ENI_KIND);
      this.reasons.push('');
      this.enis.push('');
      for (const p of this.rPorts) this.portKind[p] = rk;
      const inner = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.253', dst: '198.51.100.253', srcPort: 4000, dstPort: 4001, payload: new Uint8Array(16).fill(0xab) });
      const h = new Uint8Array(64);
      const hl = writeGeneveHeader(h, 0, { protocol: 0x0800, eni: 0n, attachment, cookie: 0x5eed0001 });
      const payload = new Uint8Array(hl + inner.length);
      payload.set(h.subarray(0, hl));
      payload.set(inner, hl);
      this.kFirst[rk] = packets.length;
      this.kCount[rk] = 1;
      packets.push(outer(plan, this.rPorts[0], payload));
    }
    // Lay the packets out in one buffer.
    this.vOff = new Int32Array(packets.length);
    this.vLen = new Int32Array(packets.length);
    let total = 0;
    let max = 0;
    for (let v = 0; v < packets.length; v++) {
      this.vOff[v] = total;
      this.vLen[v] = packets[v].length;
      total += (packets[v].length + 7) & ~7;
      if (packets[v].length > max) max = packets[v].length;
    }
    this.tmpl = Buffer.alloc(total);
    for (let v = 0; v < packets.length; v++) this.tmpl.set(packets[v], this.vOff[v]);
    this.maxPacket = max;
    this.rOff = randomEnis > 0 ? this.vOff[this.kFirst[rk]] : 0;
    this.rLen = randomEnis > 0 ? this.vLen[this.kFirst[rk]] : 0;
    // The ENI option is the first option: its data starts 8 (base) + 4 (option header) bytes in.
    this.rEniAt = OUTER_HEADER_LEN + 12;
  }

  /** Write the next extra packet due into buf at off. Returns its kind and sets lastLen; -1 when
   * none is due. `goodSince` is the number of good packets since the last malformed one. */
  next(buf: Buffer, off: number, goodSince: number): number {
    if (this.randomLeft > 0) {
      const k = this.malformedKinds;
      this.tmpl.copy(buf, off, this.rOff, this.rOff + this.rLen);
      const i = this.rIdx++;
      this.randomLeft--;
      const hi = this.rEni[2 * i];
      const lo = this.rEni[2 * i + 1];
      const e = off + this.rEniAt;
      buf[e] = hi >>> 24;
      buf[e + 1] = (hi >>> 16) & 0xff;
      buf[e + 2] = (hi >>> 8) & 0xff;
      buf[e + 3] = hi & 0xff;
      buf[e + 4] = lo >>> 24;
      buf[e + 5] = (lo >>> 16) & 0xff;
      buf[e + 6] = (lo >>> 8) & 0xff;
      buf[e + 7] = lo & 0xff;
      // Spread over several source ports, as many GWLB flows would (and over the appliance's
      // SO_REUSEPORT sockets). The UDP checksum is 0 and the IPv4 checksum does not cover ports.
      const port = this.rPorts[i % this.rPorts.length];
      buf[off + 20] = port >>> 8;
      buf[off + 21] = port & 0xff;
      this.lastLen = this.rLen;
      return k;
    }
    if (this.malformedKinds === 0 || goodSince < this.every) return -1;
    const k = this.nextKind;
    this.nextKind = k + 1 === this.malformedKinds ? 0 : k + 1;
    const v = this.kFirst[k] + this.kNext[k];
    this.kNext[k] = this.kNext[k] + 1 === this.kCount[k] ? 0 : this.kNext[k] + 1;
    this.tmpl.copy(buf, off, this.vOff[v], this.vOff[v] + this.vLen[v]);
    this.lastLen = this.vLen[v];
    return k;
  }

  lastLen = 0;

  report(): ExtrasReport {
    const r: ExtrasReport = { every: this.every, sent: {}, returned: {}, reasons: {}, enis: {} };
    this.names.forEach((n, k) => {
      r.sent[n] = this.sent[k];
      r.returned[n] = this.returned[k];
      if (k < this.malformedKinds) {
        r.reasons[n] = this.reasons[k];
        r.enis[n] = this.enis[k];
      }
    });
    return r;
  }
}

/** A complete outer IPv4 + UDP packet from GWLB (port) to the appliance around a UDP payload. */
function outer(plan: FlowPlan, port: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(OUTER_HEADER_LEN + payload.length);
  writeOuterIpUdp(p, 0, plan.gwlbIp, plan.applianceIp, port, GENEVE_PORT, payload.length);
  p.set(payload, OUTER_HEADER_LEN);
  return p;
}

/** Builds and sends batches of packets. Good traffic is round-robin over the flows; extra
 * packets (Extras above) take a slot when one is due, recorded as slotFlow = -1 - kind so that
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
  for (const m of r.malformed ?? []) malformedKind(m); // throws RangeError naming the kind
  check(r.malformed === undefined || new Set(r.malformed).size === r.malformed.length, 'malformed kinds must be distinct');
  check(r.malformedEvery === undefined || (posInt(r.malformedEvery) && r.malformedEvery <= 1_000_000), 'malformedEvery must be 1..1000000');
  check(r.randomEnis === undefined || (Number.isInteger(r.randomEnis) && r.randomEnis >= 0 && r.randomEnis <= 10_000_000), 'randomEnis must be 0..10000000');
  check(r.flowOffset === undefined || (Number.isInteger(r.flowOffset) && r.flowOffset >= 0 && r.flowOffset < 2 ** 31), 'flowOffset must be an integer >= 0');
  return r;
}

export class Emulator {
  readonly opts: EmulatorOptions;
  readonly plan: FlowPlan;
  readonly verifier: Verifier;
  /** Packets accepted by the kernel, per endpoint. */
  readonly sent: Float64Array;
  /** Malformed / random-ENI packets, or null when none were asked for. */
  readonly extras: Extras | null;
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
      flowOffset: o.flowOffset,
      sameInner: o.sameInner,
    });
    this.verifier = new Verifier(this.plan);
    this.sent = new Float64Array(this.plan.endpoints.length);
    const malformed = o.malformed ?? [];
    const randomEnis = o.randomEnis ?? 0;
    this.extras = malformed.length > 0 || randomEnis > 0 ? new Extras(this.plan, malformed, o.malformedEvery ?? 10, randomEnis) : null;
  }

  /** End the run early: the current phase stops sending, settles, and no further phase starts. */
  stop(): void {
    this.stopRequested = true;
  }

  private ran = false;

  /** Run all phases once (the counters are not reset, so an Emulator runs only once). */
  async run(): Promise<EmulatorReport> {
    if (this.ran) throw new Error('Emulator.run() may be called only once');
    this.ran = true;
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
      const sender = new Sender(plan, v.nextSeq, batchMax, plan.applianceIp, this.extras);
      const rx = new Rx(n, udp, v, this.extras);
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
      ...(this.extras === null ? {} : { extras: this.extras.report() }),
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
    private readonly x: Extras | null,
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
        // A return for an extra packet (it should never come back if malformed): its kind's.
        const xk = this.x === null ? -1 : this.x.portKind[m[b + 2] & 0xffff];
        if (xk >= 0) {
          this.x!.returned[xk]++;
          continue;
        }
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
