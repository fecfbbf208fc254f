// The "Latency" section of docs/benchmarks.md (bench/scenarios/latency.ts) and the tables the
// runner prints: per inner family, load and appliance, the round-trip percentiles of the probes
// (the median over rounds of each round's percentile; max: the largest of any round), the probes
// lost, and what each appliance adds over the reflector (the path without an appliance's work)
// per percentile. Pure, like report.ts.

import { fmt } from './lib/fmt';
import { max, median } from './lib/stats';
import { PERCENTILES, type PercentileKey, type Percentiles } from './lib/percentiles';
import type { LatencyRun, Results } from './results';

export const LATENCY_APPLIANCES = ['gwlbtun', 'baseline', 'original', 'reflector'] as const;
export const LATENCY_NAMES: Record<LatencyRun['appliance'], string> = {
  gwlbtun: 'gwlbtun',
  baseline: 'gwlbtun, baseline (--baseline)',
  original: 'C++ original (v3.0)',
  reflector: 'reflector (no appliance)',
};
export const LATENCY_KEYS: readonly PercentileKey[] = [...PERCENTILES.map((q) => q.key), 'max'];
export const LATENCY_LABELS: Record<PercentileKey, string> = { p50: 'p50', p90: 'p90', p99: 'p99', p999: 'p99.9', max: 'max' };

export interface LatencyRow {
  family: 4 | 6;
  load: LatencyRun['load'];
  appliance: LatencyRun['appliance'];
  rounds: number;
  /** Microseconds: median over rounds (max: the largest). */
  pct: Percentiles;
  /** This appliance's figure minus the reflector's of the same phase; NaN without a reflector. */
  added: Percentiles;
  sent: number;
  lost: number;
  bad: number;
  /** The bulk load beside the probes (loaded phases): packets/s asked for. */
  loadPps: number;
}

const num = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) ? x : NaN);

/** One row per (family, load, appliance) measured, families and loads in order, appliances in LATENCY_APPLIANCES order. */
export function latencyRows(res: Results): LatencyRow[] {
  const runs = res.latency ?? [];
  const rows: LatencyRow[] = [];
  for (const family of [4, 6] as const) {
    for (const load of ['idle', 'loaded'] as const) {
      const of = (a: LatencyRun['appliance']): LatencyRun[] => runs.filter((r) => r.family === family && r.load === load && r.appliance === a);
      const agg = (rs: LatencyRun[]): Percentiles => {
        const p = {} as Percentiles;
        for (const k of LATENCY_KEYS) {
          const xs = rs.map((r) => num(r.pct[k])).filter(Number.isFinite);
          p[k] = k === 'max' ? max(xs) : median(xs);
        }
        return p;
      };
      const refl = of('reflector');
      const base = agg(refl);
      for (const a of LATENCY_APPLIANCES) {
        const rs = of(a);
        if (rs.length === 0) continue;
        const pct = agg(rs);
        const added = {} as Percentiles;
        for (const k of LATENCY_KEYS) added[k] = refl.length === 0 ? NaN : pct[k] - base[k];
        rows.push({
          family, load, appliance: a, rounds: rs.length, pct, added,
          sent: rs.reduce((s, r) => s + r.sent, 0),
          lost: rs.reduce((s, r) => s + r.lost, 0),
          bad: rs.reduce((s, r) => s + r.bad, 0),
          loadPps: max(rs.map((r) => r.loadPps)),
        });
      }
    }
  }
  return rows;
}

const phaseName = (r: LatencyRow): string => `IPv${r.family}, ${r.load === 'idle' ? 'idle' : `beside ${fmt(r.loadPps)} pkt/s`}`;

/** The two tables: round-trip percentiles, and what each appliance adds over the reflector. */
export function latencyTables(res: Results): string {
  const rows = latencyRows(res);
  if (rows.length === 0) return '';
  const head = LATENCY_KEYS.map((k) => LATENCY_LABELS[k]).join(' | ');
  const us = (x: number): string => fmt(x, 1);
  const rtt = rows.map((r) => `| ${phaseName(r)} | ${LATENCY_NAMES[r.appliance]} | ${LATENCY_KEYS.map((k) => us(r.pct[k])).join(' | ')} | ${fmt(r.lost)} of ${fmt(r.sent)}${r.bad > 0 ? ` (${fmt(r.bad)} bad)` : ''} |`);
  const added = rows.filter((r) => r.appliance !== 'reflector').map((r) => `| ${phaseName(r)} | ${LATENCY_NAMES[r.appliance]} | ${LATENCY_KEYS.map((k) => (Number.isFinite(r.added[k]) && r.added[k] > 0 ? '+' : '') + us(r.added[k])).join(' | ')} |`);
  return [
    `| phase | appliance | ${head} (us) | probes lost |`,
    `| --- | --- | ${LATENCY_KEYS.map(() => '---').join(' | ')} | --- |`,
    ...rtt,
    '',
    `| phase | added over the reflector | ${head} (us) |`,
    `| --- | --- | ${LATENCY_KEYS.map(() => '---').join(' | ')} |`,
    ...added,
  ].join('\n');
}

/** The section, or '' when the results have no latency runs. */
export function latencySection(res: Results, para: (name: string, vars: Record<string, string>) => string, chart: string): string {
  const rows = latencyRows(res);
  if (rows.length === 0) return '';
  const runs = res.latency ?? [];
  const g = rows.find((r) => r.appliance === 'gwlbtun' && r.family === 4 && r.load === 'idle');
  const gl = rows.find((r) => r.appliance === 'gwlbtun' && r.family === 4 && r.load === 'loaded');
  const us = (x: number | undefined): string => (x !== undefined && x > 0 ? '+' : '') + fmt(x ?? NaN, 1);
  return `## Latency (issue 20)

${latencyTables(res)}

${chart}

${para('latency', {
    probes: fmt(max(runs.map((r) => r.sent))),
    rate: fmt(max(runs.map((r) => r.rate))),
    load: fmt(max(runs.map((r) => r.loadPps))),
    addedP50: us(g?.added.p50),
    addedP999: us(g?.added.p999),
    addedLoadedP50: us(gl?.added.p50),
    addedLoadedP999: us(gl?.added.p999),
  })}
`;
}
