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
// return), loop.ts (one phase: pacing, settling, progress), reports.ts (what a run reports),
// options.ts (the options, their defaults and validation). This file holds the Emulator that ties
// the parts together.

import { GENEVE_PORT } from '../wire/geneve';
import { endpointNames } from '../wire/eni';
import { native } from '../io/native';
import { FlowPlan } from './flows';
import { BAD_NAMES, BAD_SLOTS, Verifier } from './verifier';
import { Extras } from './extras';
import { Sender } from './sender';
import { Rx } from './receiver';
import { Loop } from './loop';
import { resolveOptions, type EmulatorOptions } from './options';
import type { Counts, EmulatorReport, EndpointReport, PhaseReport } from './reports';

// What other modules import from here: the parts above that are part of the library's surface.
export { Extras } from './extras';
export { Sender } from './sender';
export { EMULATOR_DEFAULTS, resolveOptions, type EmulatorOptions } from './options';
export type { Counts, EmulatorReport, EndpointReport, ExtrasReport, PhaseReport, ProgressEndpoint, ProgressSnapshot } from './reports';

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
