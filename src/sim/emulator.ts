// The GWLB emulator as a library. It runs inside the GWLB network namespace (its sockets open in
// the namespace of the process): it sends real Geneve over UDP to the appliance through a raw
// socket, exactly as GWLB would (outer IPv4 + UDP built by the emulator, source port per flow),
// receives what the appliance sends back on UDP 6081 and verifies every packet (verifier.ts).
//
// One thread does both directions. Sending is paced per batch; between batches the loop drains
// the receive socket and sleeps (epoll_wait for waits of a millisecond or more, so returns wake
// it; Atomics.wait for sub-millisecond gaps, which epoll's millisecond timeout cannot express).
// The loop runs in slices of a few tens of milliseconds and yields to the event loop between
// them, so signals, timers and progress output keep working.
//
// The parts: flows.ts (the flows and their packet templates), sender.ts (send batches),
// extras.ts (malformed and random-ENI packets), receiver.ts (receive), verifier.ts (check every
// return), loop.ts (one phase: pacing, settling, progress), reports.ts (what a run reports).
// This file holds the options, their validation and the Emulator that ties the parts together.

import { GENEVE_PORT } from '../wire/geneve';
import { endpointNames } from '../wire/eni';
import { native } from '../io/native';
import { FlowPlan, SimFamily, SimProto } from './flows';
import { BAD_NAMES, BAD_SLOTS, Verifier } from './verifier';
import { malformedKind } from './malformed';
import { Extras } from './extras';
import { Sender } from './sender';
import { Rx } from './receiver';
import { Loop } from './loop';
import type { Counts, EmulatorReport, EndpointReport, PhaseReport, ProgressSnapshot } from './reports';

// What other modules import from here: the parts above that are part of the library's surface.
export { Extras } from './extras';
export { Sender } from './sender';
export type { Counts, EmulatorReport, EndpointReport, ExtrasReport, PhaseReport, ProgressEndpoint, ProgressSnapshot } from './reports';

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
