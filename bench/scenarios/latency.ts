// Latency (issue 20): what the appliance adds to the wait of a packet that passes through it.
// `gen probe` (bench/gen.c) in the GWLB namespace sends one flow of 64-byte inner UDP packets
// (IPv4 or IPv6) in GWLB's Geneve at a fixed low rate (2,000/s), sleeping between probes, and
// times each one's round trip: the raw send to the appliance, the appliance's receive, its way
// through (gwlbtun: decapsulation, gwi-, the kernel's forwarding per the one-arm hook, gwo-,
// encapsulation; the reflector: a new outer header), and the kernel timestamp of its return.
// That is one transit of the appliance each way a real flow's packet makes; a request and its
// answer make two. Appliances, each in its own topology (namespaces and veth) and all pinned to
// CPU 1 as in the other scenarios: gwlbtun (1 worker), the C++ original (--original BIN) and the
// reflector (the path without an appliance's work: the floor); all three run through a round.
// Idle, they are probed at the same time, each by its own client, the clients' sends spread over
// the probe period: this machine's own tail (the reflector's) drifts from minute to minute by more
// than the differences measured, and probes taken together see the same drift. Beside a load --
// the bulk UDP load of the saturation scenario (100-byte inner packets, 64 flows, `gen send` on
// CPU 0) at about half of gwlbtun's saturation (measured once at the start, or --latency-load
// PPS), the same for all three -- they take turns, a different one first each round
// (roundOrder), so many short rounds (e.g. --rounds 6 --latency-probes 20000) compare better than
// a few long ones. The probe clients are on CPU 0 with the load; their own wake-up is not in the
// figure (the return's time is the kernel's receive timestamp), but the load's sends delay their
// sends a little, the same for every appliance: the report's "added" figures are each
// appliance's percentile minus the reflector's of the same phase.
//
// The probes come from a second GWLB address (198.18.0.3, added here and removed after): the
// appliance returns to UDP 6081 of the sender's address, and `gen send` holds 198.18.0.1:6081.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTopology, destroyOnExit, destroyTopology, forgetOnExit, type Topology } from '../../src/sim/topology';
import { metricsOf, startDaemon, startOriginal, startReflector, stopOriginal } from '../lib/appliance';
import { startBg, stopBg } from '../lib/bg';
import { ENI, GEN_BIN, GEN_CPU, log, sleep } from '../lib/env';
import { genSend } from '../lib/gen';
import { percentilesUs, readRttFile } from '../lib/percentiles';
import type { GenResult, LatencyRun } from '../results';
import type { BenchContext } from './context';

export const LATENCY_RATE = 2000;
export const LATENCY_PROBES = 60_000;
export const LATENCY_FAMILIES = [4, 6] as const;
const PROBE_IP = '198.18.0.3';
const SETTLE_MS = 1000;
/** The load's packet size and flows: the saturation scenario's. */
const LOAD_SIZE = 100;

function ipAddr(t: Topology, op: 'add' | 'del'): void {
  const r = spawnSync('ip', ['-n', t.gwlbNs, 'addr', op, `${PROBE_IP}/24`, 'dev', t.gwlbIf], { encoding: 'utf8' });
  if (r.status !== 0 && op === 'add') throw new Error(`ip addr add ${PROBE_IP}: ${r.stderr}`);
}

interface ProbeResult { sent: number; returned: number; lost: number; bad: number; late: number; rttNs: Uint32Array }

async function probe(t: Topology, family: 4 | 6, count: number, startNs = 0): Promise<ProbeResult> {
  const file = path.join(os.tmpdir(), `gwlbtun-bench-rtt-${process.pid}-${t.gwlbNs}.bin`);
  const seconds = count / LATENCY_RATE + SETTLE_MS / 1000;
  const b = startBg(t.gwlbNs, GEN_BIN, ['probe', '--eni', ENI, '--src', PROBE_IP, '--dst', t.applianceIp, '--cpus', GEN_CPU,
    '--family', String(family), '--rate', String(LATENCY_RATE), '--count', String(count), '--settle-ms', String(SETTLE_MS), '--out', file,
    '--start-ns', String(startNs)]);
  const timer = setTimeout(() => b.proc.kill('SIGKILL'), (seconds + 30) * 1000);
  const code = await b.finished();
  clearTimeout(timer);
  try {
    const line = b.out().split('\n').find((l) => l.startsWith('{"mode":"probe"'));
    if (code !== 0 || line === undefined) throw new Error(`probe client failed (exit ${code}):\n${b.out()}`);
    const j = JSON.parse(line) as { sent: number; returned: number; lost: number; bad: number; late: number };
    return { ...j, rttNs: readRttFile(fs.readFileSync(file)) };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** Where gwlbtun's time went (its /metrics histograms since its start): loop turns over 250 us
 * and 1 ms, GC pauses per thread, the main thread's late timers. For the log: where a tail
 * comes from. */
function insideSummary(m: Map<string, number>): string {
  const over = (name: string, labels: string, le: string): string => {
    const all = m.get(`${name}_count${labels === '' ? '' : `{${labels}}`}`) ?? NaN;
    const under = m.get(`${name}_bucket{${labels === '' ? '' : labels + ','}le="${le}"}`) ?? NaN;
    return `${all - under} of ${all} over ${Number(le) * 1e6} us`;
  };
  const gc = (thread: string): string => {
    const n = m.get(`gwlbtun_gc_pause_seconds_count{thread="${thread}"}`) ?? NaN;
    const s = m.get(`gwlbtun_gc_pause_seconds_sum{thread="${thread}"}`) ?? NaN;
    return `${n} (${(s * 1000).toFixed(1)} ms)`;
  };
  return `worker loop turns ${over('gwlbtun_worker_loop_turn_seconds', 'worker="0"', '0.00025')}, ${over('gwlbtun_worker_loop_turn_seconds', 'worker="0"', '0.001')}; ` +
    `GC pauses worker ${gc('worker-0')}, main ${gc('main')}; main timers late ${over('gwlbtun_main_event_loop_delay_seconds', '', '0.001')}`;
}

type Appliance = LatencyRun['appliance'];

/** The record of one phase of one appliance, logged. */
function record(c: BenchContext, appliance: Appliance, family: 4 | 6, load: number, round: number, p: ProbeResult, g: GenResult | null): void {
  const run: LatencyRun = {
    appliance, family, load: load > 0 ? 'loaded' : 'idle', round, rate: LATENCY_RATE,
    sent: p.sent, returned: p.returned, lost: p.lost, bad: p.bad, late: p.late, pct: percentilesUs(p.rttNs),
    loadPps: load, loadReturnedPps: g?.returnedPps ?? 0, loadLost: g?.lost ?? 0,
  };
  const us = (x: number): string => x.toFixed(1);
  log(`latency, ${appliance}, IPv${family}, ${run.load}${load > 0 ? ` (${load} pps, returned ${Math.round(run.loadReturnedPps)} pps, lost ${run.loadLost})` : ''}, round ${round}: ` +
    `p50 ${us(run.pct.p50)} us, p90 ${us(run.pct.p90)}, p99 ${us(run.pct.p99)}, p99.9 ${us(run.pct.p999)}, max ${us(run.pct.max)}; lost ${run.lost}/${run.sent}, bad ${run.bad}, late ticks ${run.late}`);
  (c.res.latency ??= []).push(run);
}

/** Idle: every appliance probed at the same time, each by its own client, the clients' sends
 * spread evenly over the probe period (gen probe --start-ns), so that whatever the machine does
 * in those seconds (other tenants, the hypervisor) falls on all of them alike. */
async function idleTogether(c: BenchContext, tops: ReadonlyArray<[Appliance, Topology]>, family: 4 | 6, round: number): Promise<void> {
  const count = c.latencyProbes ?? LATENCY_PROBES;
  const periodNs = 1e9 / LATENCY_RATE;
  const t0 = Number(process.hrtime.bigint()) + 500e6; // CLOCK_MONOTONIC, as gen's timerfd
  const ps = await Promise.all(tops.map(([, t], k) => probe(t, family, count, Math.round(t0 + (k * periodNs) / tops.length))));
  tops.forEach(([a], k) => record(c, a, family, 0, round, ps[k], null));
}

/** Loaded: one appliance at a time (the load would not be the same for each if they shared the
 * CPU), the bulk load started first and running past the probes' end. */
async function loadedAlone(c: BenchContext, t: Topology, appliance: Appliance, family: 4 | 6, load: number, round: number): Promise<void> {
  const count = c.latencyProbes ?? LATENCY_PROBES;
  const seconds = count / LATENCY_RATE + SETTLE_MS / 1000 + 1.5;
  // The reflector returns the inner packet as it came (no routing hop: TTL as sent).
  const bulk = genSend(t, { size: LOAD_SIZE, rate: load, seconds, ttlDec: appliance === 'reflector' ? 0 : 1, warmupMs: 500, settleMs: 300 });
  await sleep(700);
  let p: ProbeResult;
  try {
    p = await probe(t, family, count);
  } catch (e) {
    await bulk.catch(() => undefined); // bounded: the load ends by its own seconds
    throw e;
  }
  record(c, appliance, family, load, round, p, await bulk);
}

/** The order of round r (from 1): the appliances rotated by one each round, so that none is
 * always started first or loaded first: the machine drifts within minutes. */
export function roundOrder(appliances: readonly Appliance[], r: number): Appliance[] {
  const k = (r - 1) % appliances.length;
  return [...appliances.slice(k), ...appliances.slice(0, k)];
}

interface Running { stop(): Promise<void> }

async function startAppliance(c: BenchContext, a: Appliance, t: Topology): Promise<Running> {
  if (a === 'original') {
    const orig = await startOriginal(t, c.original as string);
    return { stop: () => stopOriginal(orig) };
  }
  if (a === 'reflector') {
    // It stops by itself after `seconds`: the whole round with room to spare.
    const count = c.latencyProbes ?? LATENCY_PROBES;
    const seconds = 4 * LATENCY_FAMILIES.length * (count / LATENCY_RATE + SETTLE_MS / 1000 + 5) + 120;
    const b = await startReflector(t, seconds);
    return { stop: () => stopBg(b) };
  }
  const b = await startDaemon(t, 1, true, [], a === 'baseline' ? c.baseline : undefined);
  return { stop: () => stopBg(b) };
}

export async function latency(c: BenchContext, rounds: number): Promise<void> {
  const appliances: Appliance[] = ['gwlbtun'];
  if (c.baseline !== undefined) appliances.push('baseline');
  if (c.original !== undefined) appliances.push('original');
  appliances.push('reflector');
  // One topology (namespaces, veth) per appliance, gwlbtun's the run's own: the idle phases
  // probe them all at once.
  const tops = new Map<Appliance, Topology>();
  tops.set('gwlbtun', c.t);
  const own: Topology[] = [];
  try {
    for (const a of appliances) {
      if (tops.has(a)) continue;
      const t = createTopology('blat');
      destroyOnExit(t);
      own.push(t);
      tops.set(a, t);
    }
    for (const t of tops.values()) ipAddr(t, 'add');
    let load = c.latencyLoad ?? 0;
    if (load === 0) {
      // Half of gwlbtun's saturation, the same load for every appliance and round.
      const g = await startAppliance(c, 'gwlbtun', c.t);
      try {
        const sat = await genSend(c.t, { size: LOAD_SIZE, rate: 0, seconds: 2, ttlDec: 1, settleMs: 300 });
        load = Math.max(1000, Math.round(sat.returnedPps / 2 / 1000) * 1000);
        log(`latency: gwlbtun saturates at ${Math.round(sat.returnedPps)} pps; the load beside the probes: ${load} pps`);
      } finally {
        await g.stop();
      }
    }
    for (let r = 1; r <= rounds; r++) {
      const order = roundOrder(appliances, r);
      const pairs = order.map((a) => [a, tops.get(a) as Topology] as [Appliance, Topology]);
      const running: Running[] = [];
      try {
        for (const [a, t] of pairs) running.push(await startAppliance(c, a, t));
        // A few probes per family first, not kept: the first packets of a flow (a new flow-table
        // entry, code not yet optimized for IPv6) are not what the phases measure.
        for (const family of LATENCY_FAMILIES) await Promise.all(pairs.map(([, t]) => probe(t, family, 200)));
        for (const family of LATENCY_FAMILIES) await idleTogether(c, pairs, family, r);
        for (const family of LATENCY_FAMILIES) {
          for (const [a, t] of pairs) await loadedAlone(c, t, a, family, load, r);
        }
        log(`latency round ${r}, gwlbtun's own histograms over its phases: ${insideSummary(metricsOf(c.t))}`);
      } finally {
        for (const x of running.reverse()) await x.stop();
      }
      log(`latency round ${r} done`);
    }
  } finally {
    for (const t of tops.values()) ipAddr(t, 'del');
    for (const t of own) {
      destroyTopology(t);
      forgetOnExit(t);
    }
  }
}
