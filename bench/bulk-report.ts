// The "Bulk TCP" section of docs/benchmarks.md (bench/scenarios/bulk-tcp.ts): per mode and inner
// size, the best round's inner Gbit/s and the appliance's CPU per returned packet and per GB, and
// the same-run ratios to --offload off and to the reflector. Pure, like report.ts.

import type { Results, Run } from './results';
import { BULK_MODES, BULK_SIZES, bulkLabel, type BulkMode } from './scenarios/bulk-tcp';
import { max, min } from './lib/stats';

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const NAMES: Record<BulkMode | 'reflector', string> = {
  off: 'gwlbtun `--offload off` (before)',
  'on-cut': 'gwlbtun `--offload on`, segments cut in TypeScript (kernels < 6.17)',
  on: 'gwlbtun `--offload on`, UDP tunnel GSO (kernel >= 6.17)',
  reflector: 'reflector (ceiling)',
};

/** The section, or '' when the results have no bulk runs. */
export function bulkSection(res: Results, para: (vars: Record<string, string>) => string): string {
  const runsOf = (mode: BulkMode | 'reflector', size: number): Run[] =>
    res.runs.filter((r) => r.size === size && r.label.startsWith(bulkLabel(mode, 0).replace(/round 0$/, 'round ')));
  if (!res.runs.some((r) => r.label.startsWith('bulk TCP'))) return '';
  const rows: string[] = [];
  const figures: Record<string, string> = {};
  for (const size of BULK_SIZES) {
    const off = runsOf('off', size);
    const offUs = min(off.map((r) => r.usPerPacket));
    const offG = max(off.map((r) => r.gen.innerGbps));
    const reflG = max(runsOf('reflector', size).map((r) => r.gen.innerGbps));
    for (const mode of [...BULK_MODES, 'reflector'] as const) {
      const rs = runsOf(mode, size);
      if (rs.length === 0) continue;
      const g = max(rs.map((r) => r.gen.innerGbps));
      const us = min(rs.map((r) => r.usPerPacket));
      const perGB = (us * 1000) / size; // CPU seconds per GB of inner bytes
      const bad = rs.reduce((a, r) => a + r.bad, 0);
      rows.push(`| ${size} | ${NAMES[mode]} | ${fmt(g, 2)} | ${fmt(us, 2)} | ${fmt(perGB, 2)} | ${mode === 'reflector' ? '' : `${fmt((100 * us) / offUs)}% / ${fmt((100 * g) / offG)}%`} | ${mode === 'reflector' ? '' : `${fmt((100 * g) / reflG)}%`} | ${fmt(bad)} |`);
      if (mode === 'reflector') continue;
      figures[`${mode.replace('-', '')}${size}Gbps`] = fmt(g, 2);
      figures[`${mode.replace('-', '')}${size}Us`] = fmt(us, 2);
    }
  }
  const table = [
    '| inner size (B) | appliance | inner Gbit/s (best) | CPU us per returned packet (best) | CPU s per GB | CPU / Gbit/s against `--offload off` | Gbit/s against the reflector | bad returns |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
  return `## Bulk TCP: offloads (issue 13)

${table}

${para(figures)}
`;
}
