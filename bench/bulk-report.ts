// The "Bulk TCP" section of docs/benchmarks.md (bench/scenarios/bulk-tcp.ts): per mode and inner
// size, the best round's inner Gbit/s and the appliance's CPU per returned packet and per GB, and
// the same-run ratios to --offload off and to the reflector. Pure, like report.ts.

import type { LabTcpRun, Results, Run } from './results';
import { BULK_MODES, BULK_SIZES, bulkLabel, type BulkMode } from './scenarios/bulk-tcp';
import { max, median, min } from './lib/stats';

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const NAMES: Record<BulkMode | 'reflector' | 'original', string> = {
  original: 'C++ original (v3.0)',
  off: 'gwlbtun `--offload off` (before)',
  'on-cut': 'gwlbtun `--offload on`, segments cut in TypeScript, sent through the raw socket (kernels < 6.2)',
  'on-uso': 'gwlbtun `--offload on`, segments cut in TypeScript, sent with USO (kernels 6.2 to 6.16)',
  on: 'gwlbtun `--offload on`, UDP tunnel GSO (kernel >= 6.17)',
  reflector: 'reflector (ceiling)',
};

/** The section, or '' when the results have no bulk runs. */
export function bulkSection(res: Results, para: (name: string, vars: Record<string, string>) => string): string {
  const runsOf = (mode: BulkMode | 'reflector' | 'original', size: number): Run[] =>
    res.runs.filter((r) => r.size === size && r.label.startsWith(bulkLabel(mode, 0).replace(/round 0$/, 'round ')));
  if (!res.runs.some((r) => r.label.startsWith('bulk TCP'))) return '';
  const rows: string[] = [];
  const figures: Record<string, string> = {};
  const origFigures: Record<string, string> = {}; // only when the C++ original ran (--original)
  const hasOriginal = res.runs.some((r) => r.kind === 'original');
  const ratio = (us: number, g: number, baseUs: number, baseG: number): string => `${fmt((100 * us) / baseUs)}% / ${fmt((100 * g) / baseG)}%`;
  for (const size of BULK_SIZES) {
    const best = (mode: BulkMode | 'reflector' | 'original'): { us: number; g: number; medUs: number } => {
      const rs = runsOf(mode, size);
      return { us: min(rs.map((r) => r.usPerPacket)), g: max(rs.map((r) => r.gen.innerGbps)), medUs: median(rs.map((r) => r.usPerPacket)) };
    };
    const off = best('off');
    const orig = best('original');
    const reflG = best('reflector').g;
    for (const mode of ['original', ...BULK_MODES, 'reflector'] as const) {
      const rs = runsOf(mode, size);
      if (rs.length === 0) {
        // Not run (results from before a mode existed, --bulk-modes, --bulk-sizes): its figures n/a.
        const k = mode.replace('-', '');
        if (mode === 'original' && hasOriginal) origFigures[`original${size}Gbps`] = origFigures[`original${size}Us`] = 'n/a';
        if (mode === 'reflector' || mode === 'original') continue;
        figures[`${k}${size}Gbps`] = figures[`${k}${size}Us`] = 'n/a';
        if (hasOriginal) origFigures[`${k}${size}VsOriginal`] = origFigures[`${k}${size}VsOriginalMedian`] = 'n/a';
        continue;
      }
      const { us, g, medUs } = best(mode);
      const perGB = (us * 1000) / size; // CPU seconds per GB of inner bytes
      const bad = rs.reduce((a, r) => a + r.bad, 0);
      const gw = mode !== 'reflector' && mode !== 'original';
      const cols = [
        String(size),
        NAMES[mode],
        fmt(g, 2),
        `${fmt(us, 2)}; ${fmt(medUs, 2)}`,
        fmt(perGB, 2),
        ...(hasOriginal ? [gw ? ratio(us, g, orig.us, orig.g) : ''] : []),
        gw ? ratio(us, g, off.us, off.g) : '',
        mode === 'reflector' ? '' : `${fmt((100 * g) / reflG)}%`,
        fmt(bad),
      ];
      rows.push(`| ${cols.join(' | ')} |`);
      if (!gw) {
        if (mode === 'original') {
          origFigures[`original${size}Gbps`] = fmt(g, 2);
          origFigures[`original${size}Us`] = fmt(us, 2);
        }
        continue;
      }
      figures[`${mode.replace('-', '')}${size}Gbps`] = fmt(g, 2);
      figures[`${mode.replace('-', '')}${size}Us`] = fmt(us, 2);
      if (hasOriginal) {
        origFigures[`${mode.replace('-', '')}${size}VsOriginal`] = `${fmt((100 * us) / orig.us)}%`;
        origFigures[`${mode.replace('-', '')}${size}VsOriginalMedian`] = `${fmt((100 * medUs) / orig.medUs)}%`;
      }
    }
  }
  const table = [
    `| inner size (B) | appliance | inner Gbit/s (best) | CPU us per returned packet (best; median) | CPU s per GB (best) |${hasOriginal ? ' CPU / Gbit/s against the C++ original |' : ''} CPU / Gbit/s against \`--offload off\` | Gbit/s against the reflector | bad returns |`,
    `| --- | --- | --- | --- | --- |${hasOriginal ? ' --- |' : ''} --- | --- | --- |`,
    ...rows,
  ].join('\n');
  return `## Bulk TCP: offloads (issue 13)

${table}
${hasOriginal ? `\n${para('bulk-tcp-original', origFigures)}\n` : ''}
${para('bulk-tcp', figures)}
`;
}

const LAB_NAMES: Record<LabTcpRun['mode'], string> = {
  original: 'C++ original (v3.0)',
  off: 'gwlbtun `--offload off`',
  'on-uso': 'gwlbtun `--offload on`, USO (kernels 6.2 to 6.16)',
  on: 'gwlbtun `--offload on`, UDP tunnel GSO (kernel >= 6.17)',
};

/** The "Real TCP through the lab" section (bench/scenarios/lab-tcp.ts), or '' without such runs. */
export function labTcpSection(res: Results, para: (name: string, vars: Record<string, string>) => string): string {
  const runs = res.labTcp ?? [];
  if (runs.length === 0) return '';
  const perGB = (r: LabTcpRun): number => (r.bytes > 0 ? (r.applCpuS * 1e9) / r.bytes : NaN);
  const best = (mode: LabTcpRun['mode']): { gbps: number; cpu: number; n: number; failed: number } => {
    const rs = runs.filter((r) => r.mode === mode);
    const ok = rs.filter((r) => r.ok);
    return { gbps: max(ok.map((r) => (r.bytes * 8) / (r.ms * 1e6))), cpu: min(ok.map(perGB)), n: rs.length, failed: rs.length - ok.length };
  };
  const orig = best('original');
  const rows: string[] = [];
  for (const mode of ['original', 'off', 'on-uso', 'on'] as const) {
    const b = best(mode);
    if (b.n === 0) continue;
    const vs = mode !== 'original' && orig.n > 0 ? `${fmt((100 * b.cpu) / orig.cpu)}%` : '';
    rows.push(`| ${LAB_NAMES[mode]} | ${fmt(b.gbps, 2)} | ${fmt(b.cpu, 2)} | ${vs} | ${b.n - b.failed} of ${b.n} |`);
  }
  return `## Real TCP through the lab (issue 13)

| appliance | Gbit/s (best) | appliance CPU s per GB (best) | CPU per GB against the C++ original | transfers intact |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

${para('lab-tcp', { bytes: fmt((runs[0]?.bytes ?? 0) / 2 ** 20) })}
`;
}
