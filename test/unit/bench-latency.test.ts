// bench/lib/percentiles.ts and bench/latency-report.ts: the figures of the latency scenario
// (bench/scenarios/latency.ts) from round-trip times, and the tables and chart from saved runs.
// No measurement: synthetic samples and runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { charts, CHARTS, latencyChart } from '../../bench/charts';
import { latencyRows, latencyTables } from '../../bench/latency-report';
import { nearestRank, percentilesUs, readRttFile } from '../../bench/lib/percentiles';
import type { LatencyRun, Results } from '../../bench/results';
import { latencyRuns } from './helpers/latency-runs';
import { roundOrder } from '../../bench/scenarios/latency';

test('percentiles: nearest rank, no interpolation, NaN when empty', () => {
  const s = Array.from({ length: 1000 }, (_, i) => i + 1); // 1..1000
  assert.equal(nearestRank(s, 50), 500);
  assert.equal(nearestRank(s, 90), 900);
  assert.equal(nearestRank(s, 99), 990);
  assert.equal(nearestRank(s, 99.9), 999);
  assert.equal(nearestRank(s, 100), 1000);
  assert.equal(nearestRank([7], 99.9), 7);
  assert.equal(nearestRank([1, 2, 3], 50), 2);
  assert.equal(nearestRank([1, 2, 3, 4], 50), 2);
  assert.ok(Number.isNaN(nearestRank([], 50)));
});

test('percentiles: round-trip times in ns, in any order, give us; the tail is the worst probes', () => {
  // 10,000 probes: 9,990 of 50 us and 10 slow ones of 5 ms .. 5.009 ms, shuffled.
  const ns: number[] = [];
  for (let i = 0; i < 9990; i++) ns.push(50_000);
  for (let i = 0; i < 10; i++) ns.push(5_000_000 + i * 1000);
  for (let i = ns.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [ns[i], ns[j]] = [ns[j], ns[i]];
  }
  const p = percentilesUs(Uint32Array.from(ns));
  assert.deepEqual(p, { p50: 50, p90: 50, p99: 50, p999: 50, max: 5009 });
  // One more slow probe moves p99.9 into the tail (11 of 10,001 > 0.1%).
  const p2 = percentilesUs(Uint32Array.from([...ns, 6_000_000]));
  assert.equal(p2.p999, 5000);
  assert.equal(p2.max, 6000);
  const empty = percentilesUs(new Uint32Array(0));
  assert.ok(Object.values(empty).every(Number.isNaN));
});

test('percentiles: the RTT file of gen probe is uint32 little-endian nanoseconds', () => {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(1, 0);
  b.writeUInt32LE(123_456, 4);
  b.writeUInt32LE(0xffffffff, 8);
  assert.deepEqual([...readRttFile(b)], [1, 123_456, 0xffffffff]);
  // A torn last record (a killed client) is left out.
  assert.deepEqual([...readRttFile(Buffer.concat([b, Buffer.from([1, 2])]))], [1, 123_456, 0xffffffff]);
});

const res = (latency: LatencyRun[]): Results => ({
  machine: {}, startedAt: '2026-01-02T03:04:05.000Z', seconds: 1, rounds: 2, runs: [], flows1M: null, flowtable: null,
  rcvbufMetric: null, syscallsPerPacket: null, notes: [], latency,
});

test('latency report: median over rounds per percentile, max of rounds, lost summed, added over the reflector', () => {
  const rows = latencyRows(res(latencyRuns()));
  assert.equal(rows.length, 12);
  const g = rows.find((r) => r.appliance === 'gwlbtun' && r.family === 4 && r.load === 'idle')!;
  assert.deepEqual(g.pct, { p50: 110, p90: 220, p99: 440, p999: 880, max: 2400 });
  assert.deepEqual(g.added, { p50: 70, p90: 140, p99: 280, p999: 560, max: 1600 });
  assert.equal(g.lost, 2);
  assert.equal(g.sent, 2000);
  const o = rows.find((r) => r.appliance === 'original' && r.family === 6 && r.load === 'loaded')!;
  assert.deepEqual(o.added, { p50: 80, p90: 160, p99: 320, p999: 640, max: 1600 });
  const t = latencyTables(res(latencyRuns()));
  assert.match(t, /^\| IPv4, idle \| gwlbtun \| 110\.0 \| 220\.0 \| 440\.0 \| 880\.0 \| 2,400\.0 \| 2 of 2,000 \|$/m);
  assert.match(t, /^\| IPv6, beside 60,000 pkt\/s \| C\+\+ original \(v3\.0\) \| \+80\.0 \| \+160\.0 \| \+320\.0 \| \+640\.0 \| \+1,600\.0 \|$/m);
  assert.doesNotMatch(t, /NaN|undefined/);
  // Without reflector runs nothing is added over it: n/a, never NaN.
  const noRefl = latencyTables(res(latencyRuns().filter((r) => r.appliance !== 'reflector')));
  assert.match(noRefl, /\| IPv4, idle \| gwlbtun \| n\/a \| n\/a/);
  assert.equal(latencyTables(res([])), '');
});

test('latency chart: drawn only with latency runs, carries the medians, n/a-free without the original', () => {
  const c = latencyChart(res(latencyRuns()));
  assert.equal(c.file, CHARTS.latency.file);
  for (const s of ['>110<', '>440<', '>880<', 'IPv6, beside 60k pkt/s of load', 'C++ original (v3.0)']) assert.ok(c.svg.includes(s), `chart lacks ${s}`);
  assert.doesNotMatch(c.svg, /NaN|undefined|Infinity/);
  const c2 = latencyChart(res(latencyRuns(false)));
  assert.doesNotMatch(c2.svg, /original|NaN/);
  assert.ok(charts(res(latencyRuns())).some((x) => x.file === CHARTS.latency.file));
  assert.ok(!charts(res([])).some((x) => x.file === CHARTS.latency.file));
});

test('latency rounds: the appliances in turns, each first once every n rounds', () => {
  const all = ['gwlbtun', 'original', 'reflector'] as const;
  assert.deepEqual(roundOrder(all, 1), ['gwlbtun', 'original', 'reflector']);
  assert.deepEqual(roundOrder(all, 2), ['original', 'reflector', 'gwlbtun']);
  assert.deepEqual(roundOrder(all, 3), ['reflector', 'gwlbtun', 'original']);
  assert.deepEqual(roundOrder(all, 4), roundOrder(all, 1));
  assert.deepEqual(roundOrder(['gwlbtun', 'reflector'], 2), ['reflector', 'gwlbtun']);
});
