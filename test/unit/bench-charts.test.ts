// bench/charts.ts: the SVG charts of docs/benchmarks.md, rendered from the results behind the
// committed document (bench/fixtures/) and from results with scenarios missing. Each must be
// well-formed XML, carry the figures it draws, and never print NaN. No measurement.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHARTS, charts, embed, esc, niceScale, type Chart } from '../../bench/charts';
import { MECHANISMS, mechanismVars, sayValues } from '../../bench/mechanisms';
import { report } from '../../bench/report';
import type { Results } from '../../bench/results';
import { latencyRuns } from './helpers/latency-runs';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const FIXTURE = path.join(ROOT, 'bench', 'fixtures', 'results-2026-12-01.json');
const fixture = (): Results => JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as Results;

/** A small XML well-formedness check: one root element, every tag closed in order, attributes
 * quoted, no stray '<', and '&' only as an entity. Returns the element names seen. */
function checkXml(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  let roots = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textPart = xml.slice(i, lt === -1 ? xml.length : lt);
    assert.doesNotMatch(textPart, /&(?!(amp|lt|gt|quot|apos|#\d+);)/, `bare & in ${JSON.stringify(textPart)}`);
    assert.doesNotMatch(textPart, />/, `stray > in ${JSON.stringify(textPart)}`);
    if (lt === -1) break;
    if (stack.length === 0) assert.equal(textPart.trim(), '', 'text outside the root element');
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    assert.ok(m !== null, `malformed tag at ${lt}: ${JSON.stringify(xml.slice(lt, lt + 60))}`);
    const [, close, name, , selfClose] = m;
    if (close === '/') {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else {
      if (stack.length === 0) roots++;
      names.push(name);
      if (selfClose !== '/') stack.push(name);
    }
    i = tag.lastIndex;
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(roots, 1, 'exactly one root element');
  return names;
}

function checkChart(c: Chart): void {
  const names = checkXml(c.svg);
  assert.equal(names[0], 'svg');
  assert.match(c.svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="720" height="\d+" viewBox="0 0 720 \d+" font-family="sans-serif">/);
  assert.doesNotMatch(c.svg, /NaN|undefined|Infinity|null/);
  assert.doesNotMatch(c.svg, /@import|url\(|<script|href=/, 'self-contained: no external fonts, links or scripts');
  assert.ok(c.file.startsWith('bench-') && c.file.endsWith('.svg'));
}

test('bench charts: the fixture renders three well-formed SVGs that carry its figures', () => {
  const cs = charts(fixture());
  assert.deepEqual(cs.map((c) => c.file), [CHARTS.saturation.file, CHARTS.cpu.file, CHARTS.mechanisms.file]);
  for (const c of cs) checkChart(c);
  const [sat, cpu, mech] = cs.map((c) => c.svg);
  // Saturation: the rounds (best run of each), the reflector, the ratio per round, the 62% line.
  for (const s of ['round 1', 'round 3', 'median', '138k', '254k', '132k', '249k', '54.0%', '157k']) assert.ok(sat.includes(`>${s}<`) || sat.includes(s), `saturation chart lacks ${s}`);
  // CPU: medians of the rounds in us per packet and s/GB (7.53 us at 1400 B = 5.38 s/GB).
  for (const s of ['>8.12<', '>7.52<', '>4.01<', '>5.38<', '>81.2<', 'the bar: 5 us at 100 kpps']) assert.ok(cpu.includes(s), `CPU chart lacks ${s}`);
  // Mechanisms: every measure of the table, and the worker comparison of the run.
  for (const mm of MECHANISMS) {
    assert.ok(mech.includes(esc(mm.name)), `mechanisms chart lacks ${mm.name}`);
    for (const meas of mm.measures) assert.ok(mech.includes(esc(sayValues(meas.with, meas))), `${meas.key}: with`);
  }
  for (const s of ['23, 117 and 64', '3,449', '2,574', '140.4k / 141.2k / 140.3k', 'Two workers instead of one', '7.56 / 4.39%']) assert.ok(mech.includes(s), `mechanisms chart lacks ${s}`);
});

test('bench charts: missing scenarios and null values render as n/a, never NaN', () => {
  const empty: Results = { ...fixture(), runs: [], flows1M: null, flowtable: null, rcvbufMetric: null };
  for (const c of charts(empty)) checkChart(c);
  assert.match(charts(empty)[0].svg, />not run</);
  assert.doesNotMatch(charts(empty)[0].svg, /n\/ak/);
  // Only the gwlbtun side ran, one run lost every packet (its CPU per packet saved as null, as
  // JSON.stringify writes NaN), and the worker comparison was skipped.
  const partial = fixture();
  partial.runs = partial.runs.filter((r) => r.kind === 'gwlbtun' && r.pinned);
  const spin = partial.runs.filter((r) => r.spin);
  for (const r of spin) (r as { usPerPacket: number | null }).usPerPacket = null;
  const cs = charts(JSON.parse(JSON.stringify(partial)) as Results);
  for (const c of cs) checkChart(c);
  assert.match(cs[1].svg, />n\/a</, 'the spin case without a CPU figure shows n/a');
  assert.doesNotMatch(cs[2].svg, /Two workers/, 'no worker comparison when it did not run');
});

test('bench charts: the document embeds every chart, and the mechanisms prose quotes the table', () => {
  const { doc } = report(fixture(), { satS: 4, fixedS: 5 });
  // Every chart the runner writes for these results (the fixture has no latency runs) ...
  for (const c of charts(fixture())) assert.ok(doc.includes(`\n${embed(c)}\n`), `${c.file} is not embedded`);
  // ... and with latency runs, every chart there is.
  const withLatency = { ...fixture(), latency: latencyRuns() };
  const doc2 = report(withLatency, { satS: 4, fixedS: 5 }).doc;
  assert.equal(charts(withLatency).length, Object.keys(CHARTS).length);
  for (const c of Object.values(CHARTS)) assert.ok(doc2.includes(`\n${embed(c)}\n`), `${c.file} is not embedded`);
  for (const c of charts(withLatency)) checkChart(c);
  const vars = mechanismVars();
  assert.equal(vars.readBackLossWithout, '23, 117 and 64');
  assert.equal(vars.readBackLossWith, '0');
  assert.equal(vars.passSatWith, '141.4k / 140.2k / 143.6k');
  assert.equal(vars.busyPollUsWith, '7.7-8.9');
  assert.equal(vars.rpsGenWithout, '~240');
  for (const v of Object.values(vars)) assert.ok(doc.includes(v), `${v} is not in the document`);
});

test('bench charts: axis scales are round and cover the data', () => {
  for (const v of [0.7, 5, 8.12, 81.2, 254_000, 1e6, 3]) {
    const { top, step } = niceScale(v);
    assert.ok(top >= v && top <= v * 2.5, `${v}: top ${top}`);
    assert.ok(top / step >= 2 && top / step <= 10, `${v}: ${top / step} ticks`);
  }
  assert.deepEqual(niceScale(0), { top: 1, step: 0.25 });
  assert.deepEqual(niceScale(NaN), { top: 1, step: 0.25 });
});
