// Latency (issue 20): what the appliance adds to the wait of a packet that passes through it.
// `gen probe` (bench/gen.c) in the GWLB namespace sends one flow of 64-byte inner UDP packets
// (IPv4 or IPv6) in GWLB's Geneve at a fixed low rate (2,000/s), sleeping between probes, and
// times each one's round trip: the raw send to the appliance, the appliance's receive, its way
// through (gwlbtun: decapsulation, gwi-, the kernel's forwarding per the one-arm hook, gwo-,
// encapsulation; the reflector: a new outer header), and the kernel timestamp of its return.
// That is one transit of the appliance each way a real flow's packet makes; a request and its
// answer make two. Appliances, in the same round, each pinned to CPU 1 as in the other scenarios:
// gwlbtun (1 worker), the C++ original (--original BIN) and the reflector (the path without an
// appliance's work: the floor), in a different order each round (roundOrder: this machine's own
// tail drifts from minute to minute, so many short rounds taken in turns, e.g. --rounds 8
// --latency-probes 20000, compare better than a few long ones). Each family is probed idle, then beside the bulk UDP load of the
// saturation scenario (100-byte inner packets, 64 flows, `gen send` on CPU 0) at about half of
// gwlbtun's saturation (measured once at the start, or --latency-load PPS), the same load for all
// three. The probe client is on CPU 0 with the load; its own wake-up is not in the figure (the
// return's time is the kernel's receive timestamp), but the load's sends delay its sends a little,
// the same for every appliance: the report's "added" figures are each appliance's percentile
// minus the reflector's of the same phase.
//
// The probes come from a second GWLB address (198.18.0.3, added here and removed after): the
// appliance returns to UDP 6081 of the sender's address, and `gen send` holds 198.18.0.1:6081.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Topology } from '../../src/sim/topology';
import { metricsOf, startDaemon, startOriginal, startReflector, stopOriginal } from '../lib/appliance';
import { startBg, stopBg, type Bg } from '../lib/bg';
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

async function probe(t: Topology, family: 4 | 6, count: number): Promise<ProbeResult> {
  const file = path.join(os.tmpdir(), `gwlbtun-bench-rtt-${process.pid}.bin`);
  const seconds = count / LATENCY_RATE + SETTLE_MS / 1000;
  const b = startBg(t.gwlbNs, GEN_BIN, ['probe', '--eni', ENI, '--src', PROBE_IP, '--dst', t.applianceIp, '--cpus', GEN_CPU,
    '--family', String(family), '--rate', String(LATENCY_RATE), '--count', String(count), '--settle-ms', String(SETTLE_MS), '--out', file]);
  const timer = setTimeout(() => b.proc.kill('SIGKILL'), (seconds + 30) * 1000);
  const code = await b.exited;
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

/** One phase: probes alone, or beside the bulk load (started first, running past the probes' end). */
async function phase(c: BenchContext, appliance: LatencyRun['appliance'], family: 4 | 6, load: number, round: number): Promise<LatencyRun> {
  const count = c.latencyProbes ?? LATENCY_PROBES;
  let bulk: Promise<GenResult> | null = null;
  if (load > 0) {
    const seconds = count / LATENCY_RATE + SETTLE_MS / 1000 + 1.5;
    // The reflector returns the inner packet as it came (no routing hop: TTL as sent).
    bulk = genSend(c.t, { size: LOAD_SIZE, rate: load, seconds, ttlDec: appliance === 'reflector' ? 0 : 1, warmupMs: 500, settleMs: 300 });
    await sleep(700);
  }
  let p: ProbeResult;
  try {
    p = await probe(c.t, family, count);
  } catch (e) {
    await bulk?.catch(() => undefined); // bounded: the load ends by its own seconds
    throw e;
  }
  const g = bulk === null ? null : await bulk;
  const run: LatencyRun = {
    appliance, family, load: load > 0 ? 'loaded' : 'idle', round, rate: LATENCY_RATE,
    sent: p.sent, returned: p.returned, lost: p.lost, bad: p.bad, late: p.late, pct: percentilesUs(p.rttNs),
    loadPps: load, loadReturnedPps: g?.returnedPps ?? 0, loadLost: g?.lost ?? 0,
  };
  const us = (x: number): string => x.toFixed(1);
  log(`latency, ${appliance}, IPv${family}, ${run.load}${load > 0 ? ` (${load} pps, returned ${Math.round(run.loadReturnedPps)} pps, lost ${run.loadLost})` : ''}, round ${round}: ` +
    `p50 ${us(run.pct.p50)} us, p90 ${us(run.pct.p90)}, p99 ${us(run.pct.p99)}, p99.9 ${us(run.pct.p999)}, max ${us(run.pct.max)}; lost ${run.lost}/${run.sent}, bad ${run.bad}, late ticks ${run.late}`);
  return run;
}

async function phases(c: BenchContext, appliance: LatencyRun['appliance'], load: number, round: number): Promise<void> {
  // A few probes per family first, not kept: the first packets of a flow (a new flow-table entry,
  // code not yet optimized for IPv6) are not what the phase measures.
  for (const family of LATENCY_FAMILIES) await probe(c.t, family, 200);
  for (const family of LATENCY_FAMILIES) {
    for (const l of [0, load]) (c.res.latency ??= []).push(await phase(c, appliance, family, l, round));
  }
}

type Appliance = LatencyRun['appliance'];

/** The order of round r (from 1): the appliances rotated by one each round, so that none is
 * always first after a start of the round's load measurement, or always right after another:
 * the machine drifts within minutes, and many short rounds in turns spread that drift over all. */
export function roundOrder(appliances: readonly Appliance[], r: number): Appliance[] {
  const k = (r - 1) % appliances.length;
  return [...appliances.slice(k), ...appliances.slice(0, k)];
}

export async function latency(c: BenchContext, rounds: number): Promise<void> {
  ipAddr(c.t, 'add');
  let bg: Bg | null = null;
  try {
    let load = c.latencyLoad ?? 0;
    const appliances: Appliance[] = ['gwlbtun'];
    if (c.baseline !== undefined) appliances.push('baseline');
    if (c.original !== undefined) appliances.push('original');
    appliances.push('reflector');
    for (let r = 1; r <= rounds; r++) {
      if (load === 0) {
        // Half of gwlbtun's saturation, the same load for every appliance and round.
        bg = await startDaemon(c.t, 1, true);
        const sat = await genSend(c.t, { size: LOAD_SIZE, rate: 0, seconds: 2, ttlDec: 1, settleMs: 300 });
        load = Math.max(1000, Math.round(sat.returnedPps / 2 / 1000) * 1000);
        log(`latency: gwlbtun saturates at ${Math.round(sat.returnedPps)} pps; the load beside the probes: ${load} pps`);
        await stopBg(bg);
        bg = null;
      }
      for (const a of roundOrder(appliances, r)) {
        if (a === 'original') {
          const orig = await startOriginal(c.t, c.original as string);
          try {
            await phases(c, 'original', load, r);
          } finally {
            await stopOriginal(orig);
          }
          continue;
        }
        if (a === 'reflector') {
          const count = c.latencyProbes ?? LATENCY_PROBES;
          const seconds = 2 * LATENCY_FAMILIES.length * (count / LATENCY_RATE + SETTLE_MS / 1000 + 5) + 30;
          bg = await startReflector(c.t, seconds);
        } else {
          bg = await startDaemon(c.t, 1, true, [], a === 'baseline' ? c.baseline : undefined);
        }
        await phases(c, a, load, r);
        if (a === 'gwlbtun') log(`latency round ${r}, gwlbtun's own histograms over its phases: ${insideSummary(metricsOf(c.t))}`);
        await stopBg(bg);
        bg = null;
      }
      log(`latency round ${r} done`);
    }
  } finally {
    if (bg !== null) await stopBg(bg);
    ipAddr(c.t, 'del');
  }
}
