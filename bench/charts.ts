// The charts of docs/benchmarks.md: benchmark results (results.ts) in, SVG text out. Pure, no
// dependency: hand-written SVG (rectangles, lines, text in sans-serif), fixed width, a white
// background so that the charts read the same in a browser, in GitHub's light and dark markdown
// views. A value a run did not produce (a scenario skipped, null in saved JSON) is drawn as "n/a",
// never as NaN.
//
//   bench-saturation.svg  returned packets/s at saturation, gwlbtun against the reflector ceiling,
//                         per round and median, 100 B and 1400 B
//   bench-cpu.svg         gwlbtun's CPU per returned packet (us) and per GB of inner packets (s/GB)
//   bench-mechanisms.svg  before/after of every mechanism measured (mechanisms.ts, plus the
//                         worker-count comparison of the run itself)
//   bench-latency.svg     round-trip percentiles of the latency probes per appliance, IPv4 and
//                         IPv6, idle and beside a load (only when the results have latency runs)

import { finite, fmt } from './lib/fmt';
import { max, median } from './lib/stats';
import { MECHANISMS, sayValues, type Mechanism, type Measure } from './mechanisms';
import type { Results, Run } from './results';
import { LATENCY_APPLIANCES, LATENCY_NAMES, latencyRows } from './latency-report';
import { PERCENTILES } from './lib/percentiles';

export interface Chart {
  /** File name, next to docs/benchmarks.md. */
  file: string;
  /** The image's alt text in the document. */
  alt: string;
  svg: string;
}

/** File names and alt texts of the charts: the document embeds them (report.ts), the runner writes them. */
export const CHARTS = {
  saturation: { file: 'bench-saturation.svg', alt: 'Returned packets/s at saturation, gwlbtun against the reflector ceiling, per round and median' },
  cpu: { file: 'bench-cpu.svg', alt: 'CPU per returned packet (us) and per GB (s/GB) of gwlbtun at 100 kpps and at saturation' },
  mechanisms: { file: 'bench-mechanisms.svg', alt: 'Before and after of each mechanism measured, kept or not' },
  latency: { file: 'bench-latency.svg', alt: 'Round-trip latency percentiles of 64-byte probes through gwlbtun, the C++ original and the reflector, idle and beside a load' },
} as const;

export const W = 720;
export const H = 300;
const C = {
  gwlbtun: '#0969da',
  original: '#8250df',
  baseline: '#54aeff',
  reflector: '#8c959f',
  without: '#8c959f',
  kept: '#0969da',
  notKept: '#d4760a',
  axis: '#57606a',
  grid: '#d0d7de',
  text: '#1f2328',
  muted: '#57606a',
  bar: '#cf222e',
};

// ---- SVG primitives ---------------------------------------------------------------------------

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate: finite and short (1 decimal). */
const n = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 10) / 10) : '0');

interface TextOpts {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'bold';
  fill?: string;
}

function text(x: number, y: number, s: string, o: TextOpts = {}): string {
  const attrs = [`x="${n(x)}"`, `y="${n(y)}"`, `font-size="${o.size ?? 11}"`];
  if (o.anchor !== undefined && o.anchor !== 'start') attrs.push(`text-anchor="${o.anchor}"`);
  if (o.weight !== undefined) attrs.push(`font-weight="${o.weight}"`);
  attrs.push(`fill="${o.fill ?? C.text}"`);
  return `<text ${attrs.join(' ')}>${esc(s)}</text>`;
}

function rect(x: number, y: number, w: number, h: number, fill: string, title?: string): string {
  const r = `<rect x="${n(x)}" y="${n(y)}" width="${n(Math.max(0, w))}" height="${n(Math.max(0, h))}" fill="${fill}"`;
  return title === undefined ? `${r}/>` : `${r}><title>${esc(title)}</title></rect>`;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string, dash = false, width = 1): string {
  return `<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" stroke="${stroke}" stroke-width="${width}"${dash ? ' stroke-dasharray="4 3"' : ''}/>`;
}

function dot(x: number, y: number): string {
  return `<circle cx="${n(x)}" cy="${n(y)}" r="2.2" fill="#fff" stroke="${C.text}" stroke-width="1"/>`;
}

function svgDoc(w: number, h: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">`,
    `<title>${esc(title)}</title>`,
    rect(0, 0, w, h, '#ffffff'),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Legend entries in a row from (x, y), each a swatch and its name; returns the SVG. */
function legend(x: number, y: number, entries: { name: string; color: string; dashed?: boolean }[]): string[] {
  const out: string[] = [];
  let at = x;
  for (const e of entries) {
    const sw = e.dashed === true ? 18 : 10;
    out.push(e.dashed === true ? line(at, y - 4, at + sw, y - 4, e.color, true, 1.2) : rect(at, y - 9, sw, 10, e.color));
    out.push(text(at + sw + 4, y, e.name, { size: 10 }));
    at += sw + 4 + e.name.length * 5.4 + 14;
  }
  return out;
}

/** An axis top at or above v with 4-6 round ticks. */
export function niceScale(v: number): { top: number; step: number } {
  if (!(v > 0) || !Number.isFinite(v)) return { top: 1, step: 0.25 };
  const raw = v / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(v / step - 1e-9) * step, step };
}

// ---- vertical grouped bars --------------------------------------------------------------------

interface Bar {
  series: number;
  /** null: this series does not exist in this group (nothing drawn); NaN: not measured ("n/a"). */
  value: number | null;
  /** The individual rounds, drawn as dots over the bar. */
  dots?: number[];
}

interface Group {
  label: string;
  sub?: string;
  bars: Bar[];
}

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
  title: string;
  series: { name: string; color: string }[];
  groups: Group[];
  tick: (v: number) => string;
  value: (v: number) => string;
  /** A dashed line across the plot (its name goes into the chart's legend). */
  refLine?: number;
  /** Scale the axis to the bars alone (1.5x the tallest): a dot above it (one round's outlier)
   * is drawn at the top edge with its value, instead of flattening every bar. */
  scaleToBars?: boolean;
}

function panel(p: Panel): string[] {
  const out: string[] = [];
  const left = p.x + 44;
  const right = p.x + p.w - 8;
  const top = p.y + 22;
  const bottom = p.y + p.h - 34;
  out.push(text(p.x + 8, p.y + 10, p.title, { size: 11, weight: 'bold' }));
  const all = p.groups.flatMap((g) => g.bars.flatMap((b) => (b.value === null ? [] : p.scaleToBars === true ? [b.value * 1.5] : [b.value, ...(b.dots ?? [])])));
  const vals = finite([...all, p.refLine ?? NaN]);
  const { top: vmax, step } = niceScale(vals.length === 0 ? 0 : Math.max(...vals) * 1.08);
  const yOf = (v: number): number => bottom - ((bottom - top) * Math.min(v, vmax)) / vmax;
  for (let v = 0; v <= vmax + step / 2; v += step) {
    out.push(line(left, yOf(v), right, yOf(v), v === 0 ? C.axis : C.grid));
    out.push(text(left - 4, yOf(v) + 3.5, p.tick(v), { size: 9, anchor: 'end', fill: C.muted }));
  }
  out.push(line(left, top - 4, left, bottom, C.axis));
  if (p.groups.length === 0) {
    out.push(text((left + right) / 2, (top + bottom) / 2, 'not run', { size: 12, anchor: 'middle', fill: C.muted }));
    return out;
  }
  const gw = (right - left) / p.groups.length;
  p.groups.forEach((g, gi) => {
    const bars = g.bars.filter((b) => b.value !== null);
    const bw = Math.min(30, (gw - 10) / Math.max(1, bars.length));
    const x0 = left + gi * gw + (gw - bw * bars.length) / 2;
    bars.forEach((b, bi) => {
      const x = x0 + bi * bw;
      const v = b.value as number;
      const s = p.series[b.series];
      if (!Number.isFinite(v)) {
        out.push(text(x + bw / 2, bottom - 4, 'n/a', { size: 9, anchor: 'middle', fill: C.muted }));
        return;
      }
      out.push(rect(x + 1, yOf(v), bw - 2, bottom - yOf(v), s.color, `${s.name}, ${g.label}: ${p.value(v)}`));
      for (const d of finite(b.dots ?? [])) {
        out.push(dot(x + bw / 2, yOf(d)));
        if (d > vmax) out.push(text(x + bw / 2, top - 6, '\u2191' + p.value(d), { size: 8, anchor: 'middle', fill: C.muted }));
      }
      const top1 = Math.min(yOf(v), ...finite(b.dots ?? []).filter((d) => d <= vmax).map(yOf));
      out.push(text(x + bw / 2, top1 - 3, p.value(v), { size: 9, anchor: 'middle' }));
    });
    out.push(text(left + gi * gw + gw / 2, bottom + 13, g.label, { size: 10, anchor: 'middle' }));
    if (g.sub !== undefined) out.push(text(left + gi * gw + gw / 2, bottom + 25, g.sub, { size: 9, anchor: 'middle', fill: C.muted }));
  });
  if (p.refLine !== undefined && Number.isFinite(p.refLine)) out.push(line(left, yOf(p.refLine), right, yOf(p.refLine), C.bar, true, 1.2));
  return out;
}

// ---- the results, selected as report.ts does -------------------------------------------------

const pinnedRuns = (res: Results, kind: Run['kind'], size: number, rate: number, spin = false): Run[] =>
  res.runs.filter((r) => r.kind === kind && r.size === size && r.rate === rate && r.workers === 1 && r.pinned && r.spin === spin);
const num = (x: number | null | undefined): number => (typeof x === 'number' && Number.isFinite(x) ? x : NaN);
const pps = (rs: Run[]): number[] => finite(rs.map((r) => num(r.gen?.returnedPps)));
const kfmt = (v: number): string => (!Number.isFinite(v) ? 'n/a' : v === 0 ? '0' : `${fmt(v / 1000, v >= 10_000 || v % 1000 === 0 ? 0 : 1)}k`);

/** The rounds of the pinned comparison, in order ("round 1", ...). */
function roundLabels(res: Results): string[] {
  const labels = new Set(res.runs.filter((r) => r.pinned && /^round \d+$/.test(r.label)).map((r) => r.label));
  return [...labels].sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
}

// ---- 1. saturation against the ceiling --------------------------------------------------------

export function saturationChart(res: Results): Chart {
  const rounds = roundLabels(res);
  const body: string[] = [text(12, 20, 'Returned packets/s at saturation: gwlbtun (1 worker) against the reflector ceiling', { size: 13, weight: 'bold' })];
  const ceiling = max(pps(pinnedRuns(res, 'reflector', 100, 0)));
  body.push(...legend(12, 38, [
    { name: 'gwlbtun', color: C.gwlbtun },
    { name: 'reflector (ceiling)', color: C.reflector },
    { name: `the bar: 62% of the best ceiling (${kfmt(ceiling * 0.62)})`, color: C.bar, dashed: true },
  ]));
  body.push(text(W - 12, 38, 'both on CPU 1, same run; dots: rounds', { size: 10, anchor: 'end', fill: C.muted }));
  [100, 1400].forEach((size, i) => {
    const g = pinnedRuns(res, 'gwlbtun', size, 0);
    const r = pinnedRuns(res, 'reflector', size, 0);
    const groups: Group[] = [];
    const ratio = (a: number, b: number): string | undefined => (Number.isFinite(a / b) && b > 0 ? `${fmt((100 * a) / b, 1)}%` : undefined);
    for (const label of rounds) {
      const gv = max(pps(g.filter((x) => x.label === label)));
      const rv = max(pps(r.filter((x) => x.label === label)));
      if (!Number.isFinite(gv) && !Number.isFinite(rv)) continue;
      groups.push({ label, sub: ratio(gv, rv), bars: [{ series: 0, value: gv }, { series: 1, value: rv }] });
    }
    if (groups.length > 0) {
      const gm = median(pps(g));
      const rm = median(pps(r));
      groups.push({ label: 'median', sub: ratio(gm, rm), bars: [{ series: 0, value: gm, dots: pps(g) }, { series: 1, value: rm, dots: pps(r) }] });
    }
    body.push(...panel({
      x: i * (W / 2), y: 52, w: W / 2, h: H - 52,
      title: `${size}-byte inner packets (below: gwlbtun / ceiling)`,
      series: [{ name: 'gwlbtun', color: C.gwlbtun }, { name: 'reflector', color: C.reflector }],
      groups, tick: kfmt, value: kfmt,
      refLine: size === 100 ? ceiling * 0.62 : undefined,
    }));
  });
  return { ...CHARTS.saturation, svg: svgDoc(W, H, 'Returned packets/s at saturation against the reflector ceiling', body) };
}

// ---- 2. CPU per packet and per GB --------------------------------------------------------------

export function cpuChart(res: Results): Chart {
  const cases: { label: string; size: number; rate: number; spin: boolean; reflector: boolean }[] = [
    { label: '100 kpps', size: 100, rate: 100_000, spin: false, reflector: false },
    { label: '100 kpps (spin)', size: 100, rate: 100_000, spin: true, reflector: false },
    { label: 'sat. 100 B', size: 100, rate: 0, spin: false, reflector: true },
    { label: 'sat. 1400 B', size: 1400, rate: 0, spin: false, reflector: true },
  ];
  const us = (rs: Run[]): number[] => finite(rs.map((r) => num(r.usPerPacket)));
  // CPU seconds per GB of inner packets: us per packet x 1e-6 x (1e9 / bytes per packet).
  const sPerGB = (rs: Run[]): number[] => finite(rs.map((r) => (num(r.usPerPacket) * 1000) / r.size));
  const groups = (of: (rs: Run[]) => number[]): Group[] =>
    cases.map((c) => {
      const g = of(pinnedRuns(res, 'gwlbtun', c.size, c.rate, c.spin));
      const r = of(pinnedRuns(res, 'reflector', c.size, c.rate, c.spin));
      const bars: Bar[] = [{ series: 0, value: median(g), dots: g }];
      bars.push({ series: 1, value: c.reflector ? median(r) : null, dots: r });
      return { label: c.label, bars };
    });
  const series = [{ name: 'gwlbtun', color: C.gwlbtun }, { name: 'reflector', color: C.reflector }];
  const body: string[] = [text(12, 20, 'CPU cost of gwlbtun (1 worker, CPU 1): at a fixed 100 kpps and at saturation', { size: 13, weight: 'bold' })];
  body.push(...legend(12, 38, [...series, { name: 'the bar: 5 us at 100 kpps', color: C.bar, dashed: true }]));
  body.push(text(W - 12, 38, 'bars: median of rounds; dots: rounds; 100 B packets unless 1400 B', { size: 10, anchor: 'end', fill: C.muted }));
  body.push(...panel({
    x: 0, y: 52, w: W / 2, h: H - 52, title: 'CPU per returned packet (us)', series, groups: groups(us),
    tick: (v) => fmt(v, v % 1 === 0 ? 0 : 1), value: (v) => fmt(v, 2), refLine: 5,
  }));
  body.push(...panel({
    x: W / 2, y: 52, w: W / 2, h: H - 52, title: 'CPU per GB of inner packets (s/GB)', series, groups: groups(sPerGB),
    tick: (v) => fmt(v, v % 1 === 0 ? 0 : 1), value: (v) => fmt(v, v < 10 ? 2 : 1),
  }));
  return { ...CHARTS.cpu, svg: svgDoc(W, H, 'CPU per packet and per GB', body) };
}

// ---- 3. before/after of the mechanisms ---------------------------------------------------------

/** The worker-count comparison of the run itself (unpinned daemon), as a mechanism not kept: the
 * default stays one worker up to 2 CPUs. Null when the run skipped it. */
export function workersMechanism(res: Results): Mechanism | null {
  const ws = (w: number, rate: number): Run[] => res.runs.filter((r) => !r.pinned && r.workers === w && r.rate === rate && r.kind === 'gwlbtun');
  if (ws(1, 0).length === 0 && ws(2, 0).length === 0) return null;
  const lossPct = (rs: Run[]): number[] => finite(rs.map((r) => (r.gen.sent > 0 ? (100 * num(r.gen.lost)) / r.gen.sent : NaN)));
  const usOf = (rs: Run[]): number[] => finite(rs.map((r) => num(r.usPerPacket)));
  const meas = (key: string, label: string, unit: string, better: Measure['better'], of: (rs: Run[]) => number[], rate: number, digits: number, thousands = false): Measure =>
    ({ key, label, unit, better, without: of(ws(1, rate)), with: of(ws(2, rate)), say: 'slash', digits, thousands });
  return {
    name: 'Two workers instead of one, daemon unpinned (this run)',
    kept: false,
    measures: [
      meas('workersSat', 'returned packets/s at saturation', '', 'higher', pps, 0, 1, true),
      meas('workersUs', 'CPU per packet at 100 kpps', 'us', 'lower', usOf, 100_000, 2),
      meas('workersLoss', 'loss at 150 kpps', '%', 'lower', lossPct, 150_000, 2),
    ],
  };
}

export function mechanismsChart(res: Results, mechs: Mechanism[] = MECHANISMS): Chart {
  const fromRun = workersMechanism(res);
  const all = [...mechs.filter((x) => x.kept), ...mechs.filter((x) => !x.kept), ...(fromRun === null ? [] : [fromRun])];
  const HEAD = 18;
  const ROW = 24;
  const top = 58;
  const height = top + all.reduce((a, x) => a + HEAD + ROW * x.measures.length, 0) + 10;
  const labelX = 22;
  const barX = 316;
  const barW = 230;
  const body: string[] = [text(12, 20, 'Before and after: the mechanisms measured', { size: 13, weight: 'bold' })];
  body.push(...legend(12, 40, [
    { name: 'without it (before, or as it runs today)', color: C.without },
    { name: 'with it: kept', color: C.kept },
    { name: 'with it: not kept', color: C.notKept },
  ]));
  body.push(text(W - 12, 40, 'each row on its own scale from 0; ↓ lower is better, ↑ higher', { size: 10, anchor: 'end', fill: C.muted }));
  let y = top;
  for (const mech of all) {
    y += HEAD;
    body.push(text(12, y - 5, mech.name, { size: 11, weight: 'bold' }));
    body.push(text(W - 12, y - 5, mech.kept ? 'kept' : 'not kept', { size: 10, anchor: 'end', fill: mech.kept ? C.kept : C.notKept }));
    for (const meas of mech.measures) {
      const sides = [
        { values: finite(meas.without), color: C.without, name: 'without' },
        { values: finite(meas.with), color: mech.kept ? C.kept : C.notKept, name: 'with' },
      ];
      const rowMax = Math.max(0, ...sides.flatMap((s) => s.values));
      const xOf = (v: number): number => barX + (rowMax > 0 ? (barW * v) / rowMax : 0);
      const unit = meas.unit === '' ? '' : meas.unit === '%' ? '%' : ` ${meas.unit}`;
      body.push(text(labelX, y + 13, `${meas.label}${meas.unit === '' || meas.unit === '%' ? '' : ` (${meas.unit})`} ${meas.better === 'lower' ? '↓' : '↑'}`, { size: 10 }));
      body.push(line(barX, y + 2, barX, y + ROW - 4, C.axis));
      sides.forEach((s, i) => {
        const by = y + 3 + i * 9;
        if (s.values.length === 0) {
          body.push(text(barX + 4, by + 7, 'n/a', { size: 9, fill: C.muted }));
          return;
        }
        const mid = median(s.values);
        const lo = Math.min(...s.values);
        const hi = Math.max(...s.values);
        const label = `${sayValues(s.values, meas)}${unit}`;
        body.push(rect(barX, by, Math.max(1, xOf(mid) - barX), 8, s.color, `${mech.name}, ${meas.label}, ${s.name}: ${label}`));
        if (hi > lo) body.push(line(xOf(lo), by + 4, xOf(hi), by + 4, C.text), line(xOf(lo), by + 1, xOf(lo), by + 7, C.text), line(xOf(hi), by + 1, xOf(hi), by + 7, C.text));
        body.push(text(Math.max(xOf(hi), xOf(mid)) + 5, by + 7.5, label, { size: 9 }));
      });
      y += ROW;
    }
  }
  return { ...CHARTS.mechanisms, svg: svgDoc(W, height, 'Before and after: the mechanisms measured', body) };
}

// ---- 4. latency percentiles ---------------------------------------------------------------------

/** Four panels (IPv4/IPv6, idle/loaded); groups: p50 to p99.9; bars: each appliance measured
 * (median over rounds, dots: rounds). The max is left to the table: one outlier would flatten
 * the rest. */
export function latencyChart(res: Results): Chart {
  const rows = latencyRows(res);
  const runs = res.latency ?? [];
  const present = LATENCY_APPLIANCES.filter((a) => rows.some((r) => r.appliance === a));
  const colors = { gwlbtun: C.gwlbtun, baseline: C.baseline, original: C.original, reflector: C.reflector };
  const series = present.map((a) => ({ name: LATENCY_NAMES[a], color: colors[a] }));
  const PH = 220;
  const height = 52 + 2 * PH + 14;
  const body: string[] = [text(12, 20, 'Round-trip time of 64-byte probes through the appliance (us)', { size: 13, weight: 'bold' })];
  body.push(...legend(12, 38, series));
  body.push(text(12, height - 6, 'each on CPU 1; bars: median of rounds; dots: rounds (an arrow: a round above the axis, with its value)', { size: 10, fill: C.muted }));
  const us = (v: number): string => fmt(v, v >= 100 ? 0 : 1);
  ([4, 6] as const).forEach((family, row) => {
    (['idle', 'loaded'] as const).forEach((load, col) => {
      const load1 = rows.find((r) => r.family === family && r.load === load)?.loadPps ?? NaN;
      const groups: Group[] = rows.some((r) => r.family === family && r.load === load)
        ? PERCENTILES.map((q) => ({
          label: q.label,
          bars: present.map((a, si) => {
            const r = rows.find((x) => x.family === family && x.load === load && x.appliance === a);
            const dots = finite(runs.filter((x) => x.family === family && x.load === load && x.appliance === a).map((x) => num(x.pct?.[q.key])));
            return { series: si, value: r === undefined ? null : num(r.pct[q.key]), dots };
          }),
        }))
        : [];
      body.push(...panel({
        x: col * (W / 2), y: 52 + row * PH, w: W / 2, h: PH,
        title: `IPv${family}, ${load === 'idle' ? 'idle' : `beside ${Number.isFinite(load1) ? kfmt(load1) : 'a'} pkt/s of load`}`,
        series, groups, tick: us, value: us, scaleToBars: true,
      }));
    });
  });
  return { ...CHARTS.latency, svg: svgDoc(W, height, 'Round-trip latency percentiles', body) };
}

/** Every chart of the document, in the order it shows them (the latency chart only with latency runs). */
export function charts(res: Results): Chart[] {
  return [saturationChart(res), cpuChart(res), mechanismsChart(res), ...((res.latency ?? []).length > 0 ? [latencyChart(res)] : [])];
}

/** The markdown that embeds a chart (docs/benchmarks.md and the charts sit in the same folder). */
export function embed(c: Pick<Chart, 'file' | 'alt'>): string {
  return `![${c.alt}](${c.file})`;
}

