// The side-by-side table of `npm run bench -- --baseline DIR`: this checkout's gwlbtun against
// another checkout's (a commit before a change), both measured in the same rounds, with the
// reflector ceiling of the same rounds for scale. Best of rounds (other load only ever slows a
// run) and medians; CPU per packet at the fixed rate is the steadier figure.

import type { Results, Run } from './results';

function pick(runs: Run[], kind: Run['kind'], size: number, rate: number, spin: boolean): Run[] {
  return runs.filter((r) => r.kind === kind && r.size === size && r.workers === 1 && r.pinned && (rate === 0 ? r.rate === 0 : r.rate === rate && r.spin === spin));
}

function median(v: number[]): number {
  if (v.length === 0) return NaN;
  const s = v.slice().sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function fmt(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '-';
}

export function baselineTable(res: Results, baseline: string): string {
  const rows: string[] = [
    `Same run, this checkout against --baseline ${baseline} (best of rounds; median in brackets):`,
    '',
    '| measure | this checkout | baseline | ratio (this / baseline) |',
    '| --- | --- | --- | --- |',
  ];
  for (const size of [100, 1400]) {
    const a = pick(res.runs, 'gwlbtun', size, 0, false).map((r) => r.gen.returnedPps);
    const b = pick(res.runs, 'baseline', size, 0, false).map((r) => r.gen.returnedPps);
    const ceil = pick(res.runs, 'reflector', size, 0, false).map((r) => r.gen.returnedPps);
    const best = (v: number[]): number => (v.length === 0 ? NaN : Math.max(...v));
    rows.push(
      `| returned pkt/s at saturation, ${size} B (ceiling ${fmt(best(ceil), 0)}) | ${fmt(best(a), 0)} (${fmt(median(a), 0)}) | ${fmt(best(b), 0)} (${fmt(median(b), 0)}) | ${fmt(best(a) / best(b), 3)} (${fmt(median(a) / median(b), 3)}) |`,
    );
  }
  for (const spin of [false, true]) {
    const rate = 100_000;
    const a = pick(res.runs, 'gwlbtun', 100, rate, spin).map((r) => r.usPerPacket);
    const b = pick(res.runs, 'baseline', 100, rate, spin).map((r) => r.usPerPacket);
    const best = (v: number[]): number => (v.length === 0 ? NaN : Math.min(...v));
    rows.push(
      `| CPU per packet at 100 kpps${spin ? ' (generator spinning)' : ''}, us | ${fmt(best(a), 2)} (${fmt(median(a), 2)}) | ${fmt(best(b), 2)} (${fmt(median(b), 2)}) | ${fmt(best(a) / best(b), 3)} (${fmt(median(a) / median(b), 3)}) |`,
    );
  }
  return rows.join('\n');
}
