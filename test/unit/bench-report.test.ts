// bench/report.ts stitches the prose of bench/prose/*.md with the measured tables: every prose
// file is used, every placeholder is filled, and the sections of docs/benchmarks.md are there.
// No measurement: synthetic results.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { PROSE_DIR, prose, report } from '../../bench/report';
import type { GenResult, Results, Run } from '../../bench/results';
import { BULK_MODES, BULK_SIZES, bulkLabel } from '../../bench/scenarios/bulk-tcp';
import { latencyRuns } from './helpers/latency-runs';

function run(kind: Run['kind'], label: string, workers: number, pinned: boolean, size: number, rate: number, spin: boolean): Run {
  const gen: GenResult = {
    flows: 64, size, rate, batch: 64, sent: 500_000, verified: 500_000, lost: 0, sendErrors: 0, sendSeconds: 5, windowSeconds: 4.5,
    sentPps: 100_000, returnedPps: kind === 'reflector' ? 250_000 : 140_000, innerGbps: 1.5, counts: { ok: 500_000 }, cpuSeconds: 4,
  };
  return { kind, label, workers, pinned, size, rate, spin, gen, applCpuS: 3.5, usPerPacket: 7.1, rcvbufErrors: 0, gwoTxDropped: 0, idleBefore: 0.95, otherCpuS: 0.01, bad: 0 };
}

function results(): Results {
  const runs: Run[] = [];
  for (let r = 1; r <= 2; r++) {
    for (const size of [100, 1400]) runs.push(run('gwlbtun', `round ${r}`, 1, true, size, 0, false));
    for (const spin of [false, true]) runs.push(run('gwlbtun', `round ${r}`, 1, true, 100, 100_000, spin));
    for (const size of [100, 1400]) runs.push(run('reflector', `round ${r}`, 1, true, size, 0, false));
  }
  for (const w of [1, 2]) for (const rate of [0, 100_000, 150_000]) runs.push(run('gwlbtun', 'workers 1', w, false, 100, rate, false));
  for (const size of BULK_SIZES) {
    for (const mode of [...BULK_MODES, 'reflector'] as const) runs.push(run(mode === 'reflector' ? 'reflector' : 'gwlbtun', bulkLabel(mode, 1), 1, true, size, 0, false));
    const o = run('original', bulkLabel('original', 1), 1, true, size, 0, false);
    runs.push({ ...o, usPerPacket: 14.2 });
  }
  return {
    machine: { cpu: 'test CPU', cpus: 2, mhz: '1000', hypervisor: 'no', memoryGiB: 1, uname: 'Linux test', node: 'v0' },
    startedAt: '2026-01-02T03:04:05.000Z', seconds: 180, rounds: 2, runs,
    flows1M: { flows: 1_000_000, sent: 1_000_000, verified: 1_000_000, lost: 0, tableFlows: 1_000_000, evictions: 0, rssIdleMB: 60, rssMB: 200, hwmMB: 201, seconds: 11 },
    flowtable: { nsPerOp: { insert: 480, lookupFwd: 280, lookupRev: 275, lookupHot: 76.5, memLatency: 170.4 }, tableMB: 138.5, evicted: 0 },
    rcvbufMetric: { metric: 12_345, proc: 12_345 }, syscallsPerPacket: null, notes: ['a note'],
    labTcp: (['original', 'off', 'on'] as const).map((mode, i) => ({ mode, round: 1, ok: true, bytes: 6 * 2 ** 26, ms: 4000, applCpuS: 3 - i * 0.5 })),
    latency: latencyRuns(),
  };
}

test('bench report: every prose file is stitched in, every placeholder filled, every section present', () => {
  const { doc, table } = report(results(), { satS: 4, fixedS: 5 });
  assert.ok(doc.includes(table));
  assert.doesNotMatch(doc, /\{\{|\}\}|\$\{|undefined|NaN/);
  for (const f of fs.readdirSync(PROSE_DIR).filter((n) => n.endsWith('.md'))) {
    const firstLine = fs.readFileSync(`${PROSE_DIR}/${f}`, 'utf8').split('\n')[0].replace(/\{\{\w+\}\}.*$/, '');
    assert.ok(doc.includes(firstLine), `${f} is not in the document`);
  }
  const headings = doc.split('\n').filter((l) => l.startsWith('#'));
  assert.deepEqual(headings, [
    '# Benchmarks', '## Machine', '## Results against the bar (issue #4)', '## Workers on 2 CPUs (daemon unpinned, generator on CPU 0)',
    '## Bulk TCP: offloads (issue 13)', '## Real TCP through the lab (issue 13)', '## Latency (issue 20)', '## Receive-buffer drops', '## 1M active flows', '## Flow table micro-benchmark (bench/flowtable.ts)', '## Every run',
    '## Where the time goes', '## Changes of the performance pass (before -> after, same machine, runs alternating)', '## Measured and not kept',
    '## How to reproduce', '## Method',
  ]);
  // Figures land where the prose quotes them.
  assert.match(doc, /last round: metric 12,345, \/proc\/<pid>\/net\/snmp 12,345/);
  assert.match(doc, /Daemon RSS: 60 MB idle \(64 flows\), 200 MB with\n1M flows, peak 201 MB\./);
  assert.match(doc, /as fast as it can for 4 s;/);
  assert.match(doc, /Fixed rate: 100 kpps for 5 s,/);
  assert.match(doc, /^Note: a note$/m);
  assert.match(doc, /\| 1500 \| gwlbtun `--offload on`, UDP tunnel GSO \(kernel >= 6.17\) \| 1.50 \| 7.10; 7.10 \| 4.73 \| 50% \/ 100% \|/);
  assert.match(doc, /\| gwlbtun `--offload on`, UDP tunnel GSO \(kernel >= 6.17\) \| 0.81 \| 4.97 \| 67% \| 1 of 1 \|/);
  // Latency: the tables, the chart, and the prose's figures (gwlbtun IPv4 added over the reflector).
  assert.match(doc, /^\| IPv4, idle \| gwlbtun \| \+70\.0 \| \+140\.0 \| \+280\.0 \| \+560\.0 \| \+1,600\.0 \|$/m);
  assert.ok(doc.includes('![Round-trip latency percentiles'), 'the latency chart is embedded');
  assert.match(doc, /gwlbtun, IPv4, idle: \+70\.0 us at p50, \+560\.0 us at p99\.9; beside the load:\n\+140\.0 us and \+1,120\.0 us \(a negative figure/);
});

test('bench report: results without latency runs (older results) have no latency section', () => {
  const r = results();
  delete r.latency;
  const { doc } = report(r, { satS: 4, fixedS: 5 });
  assert.doesNotMatch(doc, /## Latency|bench-latency\.svg/);
  assert.doesNotMatch(doc, /NaN|undefined/);
});

test('bench report: a placeholder without a value, or a value without a placeholder, is an error', () => {
  assert.throws(() => prose('flows-1m', {}), /no value for \{\{sent\}\}/);
  assert.throws(() => prose('results', { nowhere: '1' }), /\{\{nowhere\}\} is missing/);
});
