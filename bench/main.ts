// `npm run bench`: the whole data path in network namespaces, measured against a reflector
// ceiling in the same run, and written to docs/benchmarks.md. This file is the runner: options,
// the order of the scenarios (bench/scenarios/*.ts), the raw results (build/bench-results.json)
// and the document (bench/report.ts, with the prose of bench/prose/*.md) with its SVG charts
// (bench/charts.ts), written next to it as docs/bench-*.svg.
//
//   node dist/bench/main.js [--rounds N] [--no-write] [--out FILE] [--json FILE] [--skip-workers]
//                           [--skip-flows] [--skip-flowtable] [--skip-bulk] [--only-bulk] [--skip-lab-tcp]
//                           [--render RESULTS.json] [--baseline DIR] [--original BIN]
//                           [--bulk-modes off,on-cut,on-uso,on,original,reflector] [--bulk-sizes 1500,8500]
//                           [--rx-gro threaded|flush] [--skip-latency] [--only-latency]
//                           [--latency-probes N] [--latency-load PPS] [--help]
//
// --help prints the options (exit 0); an unknown or bad option is one line on stderr (exit 2).
//
// --baseline DIR: DIR is another built checkout (a commit from before a change); its bin/gwlbtun
// runs the saturation and fixed-rate scenarios in the same rounds, right after this checkout's,
// and the runner prints both side by side with their ratio (bench/baseline.ts): a change's
// effect measured in one run, on one machine state. It runs the latency phases too (appliance
// 'baseline' in the latency tables).
//
// --rx-gro MODE: the bulk TCP rounds with the kernel's UDP GRO on the appliance's receive side, an
// experiment (bench/lib/rxgro.ts); its runs are logged and saved (--json), not put in the document.
//
// --original BIN: the C++ original (aws-samples' gwlbtun v3.0, built outside this repository; see
// docs/benchmarks.md for how) runs the bulk TCP load in the same rounds as gwlbtun and the
// reflector, so the bar of issue 13 (CPU per packet against the original's) is a same-run ratio.
//
// --only-latency / --skip-latency: the latency scenario (bench/scenarios/latency.ts: round-trip
// probes through gwlbtun, the original when given and the reflector, idle and beside a load) alone,
// or everything but it; --latency-probes N per phase (default 60,000 at 2,000/s: 30 s),
// --latency-load PPS the load beside them (default half of gwlbtun's saturation).
//
// --render rewrites the document and its charts from saved results without measuring; the
// results behind the committed document are bench/fixtures/results-<date>.json.
//
// Setup (src/sim/topology.ts): namespace "gwlb" (198.18.0.1) and namespace "appl" (198.18.0.2)
// joined by a veth pair. The load is bench/gen.c (compiled here with cc), pinned to CPU 0: it
// sends GWLB-style Geneve over a raw socket (64 flows of one endpoint, round robin, 100- or
// 1400-byte inner IPv4/UDP packets) and verifies every packet that comes back. The appliance side
// is pinned to CPU 1 (the whole process, every thread):
//   - the ceiling: `gen reflect`, recvmmsg + outer header + raw sendmmsg, nothing else;
//   - gwlbtun (bin/gwlbtun) with the one-arm example hook (kernel forwarding gwi- -> gwo-).
// Reflector and gwlbtun rounds alternate, so both see the same machine state; every figure is
// the best of its rounds (other load on the machine only ever makes a run slower) and the
// median is kept alongside.
//
// Why pinned: on 2 CPUs the generator needs one whole CPU at saturation; pinning gives each side
// one CPU and keeps the scheduler's placement out of the comparison. The worker-count comparison
// (one worker against two) runs the daemon unpinned, so two workers can use both CPUs.
//
// Why the veth's default receive path: a packet sent into a veth is processed by the receiving
// namespace's stack on the SENDING CPU (softirq in the sender's context), so the generator pays
// for the appliance's UDP receive and the appliance pays for GWLB's receive of what it returns.
// That is the same for the reflector and gwlbtun. Steering it with RPS was measured and costs
// far more here (an inter-processor interrupt per packet in this VM: the generator fell from
// ~240 to ~100 kpps).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createTopology, destroyOnExit, destroyTopology, forgetOnExit } from '../src/sim/topology';
import { charts } from './charts';
import { startDaemon } from './lib/appliance';
import { stopBg, type Bg } from './lib/bg';
import { GEN_SRC, ROOT, log, t0 } from './lib/env';
import { buildGen } from './lib/gen';
import { findKsoftirqd, machine } from './lib/system';
import { report } from './report';
import { latencyTables } from './latency-report';
import { baselineTable } from './baseline';
import type { Results } from './results';
import { ceiling } from './scenarios/ceiling';
import type { BenchContext } from './scenarios/context';
import { fixedRate } from './scenarios/fixed-rate';
import { flows1M } from './scenarios/flows-1m';
import { flowtable } from './scenarios/flowtable';
import { rcvbufMetric } from './scenarios/rcvbuf';
import { SATURATION_SIZES, saturation } from './scenarios/saturation';
import { workers } from './scenarios/workers';
import { bulkTcp } from './scenarios/bulk-tcp';
import { labTcp } from './scenarios/lab-tcp';
import { RX_GRO_MODES, type RxGroMode } from './lib/rxgro';
import { latency } from './scenarios/latency';

// ---- options -----------------------------------------------------------------------------------
const HELP = `usage: npm run bench -- [options]   (as root, on 2 or more CPUs; writes docs/benchmarks.md)
  --rounds N             rounds of every scenario (default 3, 1 to 10)
  --no-write             measure, print and save the results, but leave the document alone
  --out FILE             the document (default docs/benchmarks.md; its charts go next to it)
  --json FILE            the raw results (default build/bench-results.json)
  --skip-workers         leave out the one-worker/two-worker comparison
  --skip-flows           leave out the one-million-flows scenario
  --skip-flowtable       leave out the flow table micro-benchmark
  --skip-bulk            leave out bulk TCP
  --only-bulk            bulk TCP only
  --skip-lab-tcp         leave out real TCP through the lab
  --sat-seconds S        seconds per saturation run (default 4)
  --fixed-seconds S      seconds per fixed-rate run (default 5)
  --render RESULTS.json  rewrite the document and charts from saved results, without measuring
  --baseline DIR         another built checkout, measured in the same rounds
  --original BIN         the C++ original, measured in the bulk TCP and latency rounds
  --bulk-modes LIST      off,on-cut,on-uso,on,original,reflector (bulk TCP modes)
  --bulk-sizes LIST      inner packet sizes of bulk TCP, e.g. 1500,8500
  --rx-gro MODE          ${RX_GRO_MODES.join('|')}: the kernel's UDP GRO on the receive side (an experiment)
  --skip-latency         leave out round-trip latency
  --only-latency         round-trip latency only
  --latency-probes N     probes per latency phase (default 60,000 at 2,000/s)
  --latency-load PPS     the load beside the probes (default half of gwlbtun's saturation)
  -h, --help             this help
`;

/** The options, or the help (exit 0), or one line on a bad option (exit 2): never a stack trace. */
function options(): ReturnType<typeof parse> {
  try {
    const o = parse();
    rxGroMode(o['rx-gro']); // checked here, before anything runs
    if (o.help === true) {
      process.stdout.write(HELP);
      process.exit(0);
    }
    return o;
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message.split('\n')[0].replace(/\. To specify.*$/, '')} (see npm run bench -- --help)\n`);
    process.exit(2);
  }
}
function parse() {
  return parseArgs({
  options: {
    help: { type: 'boolean', short: 'h' },
    rounds: { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(ROOT, 'docs', 'benchmarks.md') },
    json: { type: 'string', default: path.join(ROOT, 'build', 'bench-results.json') },
    'skip-workers': { type: 'boolean', default: false },
    'skip-flows': { type: 'boolean', default: false },
    'skip-flowtable': { type: 'boolean', default: false },
    'skip-bulk': { type: 'boolean', default: false },
    'only-bulk': { type: 'boolean', default: false },
    'skip-lab-tcp': { type: 'boolean', default: false },
    render: { type: 'string' },
    'sat-seconds': { type: 'string', default: '4' },
    'fixed-seconds': { type: 'string', default: '5' },
    baseline: { type: 'string' },
    original: { type: 'string' },
    'bulk-modes': { type: 'string' },
    'bulk-sizes': { type: 'string' },
    'rx-gro': { type: 'string' },
    'skip-latency': { type: 'boolean', default: false },
    'only-latency': { type: 'boolean', default: false },
    'latency-probes': { type: 'string' },
    'latency-load': { type: 'string' },
  },
  }).values;
}
const opt = options();
function rxGroMode(v: string | undefined): RxGroMode | undefined {
  if (v === undefined) return undefined;
  if (!(RX_GRO_MODES as readonly string[]).includes(v)) throw new Error(`--rx-gro: one of ${RX_GRO_MODES.join(', ')}`);
  return v as RxGroMode;
}

const ROUNDS = Math.max(1, Math.min(10, Number(opt.rounds) || 3));
const SAT_S = Math.max(1, Math.min(30, Number(opt['sat-seconds']) || 4));
const FIXED_S = Math.max(1, Math.min(60, Number(opt['fixed-seconds']) || 5));
const RENDER = { satS: SAT_S, fixedS: FIXED_S };
/** A positive integer option within [lo, hi], or undefined when not given. */
function intOpt(name: string, lo: number, hi: number): number | undefined {
  const v = opt[name as keyof typeof opt];
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < lo || x > hi) throw new Error(`--${name}: an integer from ${lo} to ${hi}`);
  return x;
}
const ONLY_LATENCY = opt['only-latency'] === true;
if (ONLY_LATENCY && opt['skip-latency'] === true) throw new Error('--only-latency and --skip-latency exclude each other');

async function main(): Promise<void> {
  if (opt.render !== undefined) {
    // Regenerate the document from saved raw results (no measurement).
    const saved = JSON.parse(fs.readFileSync(opt.render, 'utf8')) as Results;
    fs.writeFileSync(opt.out!, report(saved, RENDER).doc);
    writeCharts(saved);
    log(`wrote ${path.relative(ROOT, opt.out!)} and its charts from ${opt.render}`);
    return;
  }
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (network namespaces, TUN devices, raw sockets)');
  if (os.cpus().length < 2) throw new Error('the benchmark pins the load to CPU 0 and the appliance to CPU 1: it needs 2 CPUs');
  if (!fs.existsSync(path.join(ROOT, 'build', 'gwlbtun.node'))) throw new Error("build/gwlbtun.node is missing: run 'npm run build' first");
  log(`compiling ${path.relative(ROOT, GEN_SRC)}`);
  buildGen();
  findKsoftirqd();
  const res: Results = {
    machine: machine(),
    startedAt: new Date().toISOString(),
    seconds: 0,
    rounds: ROUNDS,
    runs: [],
    flows1M: null,
    flowtable: null,
    rcvbufMetric: null,
    syscallsPerPacket: null,
    notes: [],
    labTcp: [],
    latency: [],
  };
  // The daemons' runtime directory (PID file, state file): the run's own, not /run/gwlbtun.
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-bench-run-'));
  process.env.RUNTIME_DIRECTORY = runDir;
  process.on('exit', () => fs.rmSync(runDir, { recursive: true, force: true }));
  const t = createTopology('bench');
  destroyOnExit(t);
  const c: BenchContext = { t, res, satS: SAT_S, fixedS: FIXED_S, original: opt.original === undefined ? undefined : path.resolve(opt.original),
    bulkModes: opt['bulk-modes']?.split(','),
    bulkSizes: opt['bulk-sizes']?.split(',').map(Number),
    rxGro: rxGroMode(opt['rx-gro']),
    latencyProbes: intOpt('latency-probes', 1, 10_000_000),
    latencyLoad: intOpt('latency-load', 1, 10_000_000),
    baseline: opt.baseline === undefined ? undefined : path.join(path.resolve(opt.baseline), 'bin', 'gwlbtun'),
  };
  let bg: Bg | null = null;
  try {
    log(`topology ${t.gwlbNs} <-> ${t.applianceNs}; ${ROUNDS} rounds`);
    // Main comparison: gwlbtun (1 worker) and the reflector, both pinned to CPU 1, alternating.
    // gwlbtun goes first in each round (see scenarios/ceiling.ts for why).
    // Bulk TCP, offloads off and on and the reflector (scenarios/bulk-tcp.ts).
    if (!opt['skip-bulk'] && !ONLY_LATENCY) await bulkTcp(c, ROUNDS);
    // Real TCP through the lab: its own namespaces, made and removed per run (scenarios/lab-tcp.ts).
    if (!opt['skip-lab-tcp'] && !ONLY_LATENCY) await labTcp(c, ROUNDS);
    // Round-trip latency through each appliance, idle and beside a load (scenarios/latency.ts).
    if (!opt['skip-latency'] && !opt['only-bulk']) await latency(c, ROUNDS);
    for (let r = 1; r <= ROUNDS && !opt['only-bulk'] && !ONLY_LATENCY; r++) {
      bg = await startDaemon(t, 1, true);
      for (const size of SATURATION_SIZES) await saturation(c, bg, r, size);
      await fixedRate(c, bg, r);
      if (r === ROUNDS) {
        rcvbufMetric(c, bg);
        if (!opt['skip-flows']) res.flows1M = await flows1M(c, bg);
      }
      await stopBg(bg);
      bg = null;
      if (opt.baseline !== undefined) {
        bg = await startDaemon(t, 1, true, [], path.join(path.resolve(opt.baseline), 'bin', 'gwlbtun'));
        for (const size of SATURATION_SIZES) await saturation(c, bg, r, size, 'baseline');
        await fixedRate(c, bg, r, 'baseline');
        await stopBg(bg);
        bg = null;
      }
      await ceiling(c, r);
    }
    if (!opt['skip-workers'] && !opt['only-bulk'] && !ONLY_LATENCY) await workers(c);
  } finally {
    if (bg !== null) await stopBg(bg);
    destroyTopology(t);
    forgetOnExit(t);
  }
  if (!opt['skip-flowtable'] && !opt['only-bulk'] && !ONLY_LATENCY) flowtable(res);
  res.seconds = Math.round((Date.now() - t0) / 1000);
  const md = report(res, RENDER);
  process.stdout.write(md.table + '\n');
  if ((res.latency ?? []).length > 0) process.stdout.write(latencyTables(res) + '\n');
  if (opt.baseline !== undefined) process.stdout.write(baselineTable(res, opt.baseline) + '\n');
  fs.mkdirSync(path.dirname(opt.json!), { recursive: true });
  fs.writeFileSync(opt.json!, JSON.stringify(res, null, 2) + '\n');
  log(`raw results: ${path.relative(ROOT, opt.json!)}`);
  if (!opt['no-write']) {
    fs.writeFileSync(opt.out!, md.doc);
    writeCharts(res);
    log(`wrote ${path.relative(ROOT, opt.out!)} and its charts`);
  }
  log(`done in ${res.seconds} s`);
}

/** The charts the document embeds, next to it (docs/bench-*.svg for docs/benchmarks.md). */
function writeCharts(res: Results): void {
  for (const c of charts(res)) fs.writeFileSync(path.join(path.dirname(opt.out!), c.file), c.svg);
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
