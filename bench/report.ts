// The renderer of docs/benchmarks.md: measured results (results.ts) in, the document out. The
// figures and tables are computed here; every paragraph of prose lives in bench/prose/*.md, with
// {{name}} placeholders for the figures it quotes, and is stitched in between. Pure: reads the
// prose files, measures nothing, so `npm run bench -- --render RESULTS.json` can rewrite the
// document from saved results. The charts (bench/charts.ts) are embedded as image links; the
// runner writes their SVG files next to the document.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Results, Run } from './results';
import { CHARTS, embed } from './charts';
import { fmt } from './lib/fmt';
import { mechanismVars } from './mechanisms';
import { max, median, min } from './lib/stats';
import { bulkSection, labTcpSection } from './bulk-report';
import { latencySection } from './latency-report';

/** The prose: bench/prose in the repository (this file runs as dist/bench/report.js). */
export const PROSE_DIR = path.resolve(__dirname, '..', '..', 'bench', 'prose');

/** Run lengths the document states (the command line's, not stored in the results). */
export interface RenderOptions {
  satS: number;
  fixedS: number;
}

/** bench/prose/<name>.md with every {{key}} replaced by vars[key]. A placeholder without a value,
 * or a value without its placeholder, is an error: a figure must never silently vanish. */
export function prose(name: string, vars: Record<string, string> = {}): string {
  const file = path.join(PROSE_DIR, `${name}.md`);
  const text = fs.readFileSync(file, 'utf8');
  const used = new Set<string>();
  const out = text.replace(/\{\{(\w+)\}\}/g, (_m, key: string) => {
    if (!Object.prototype.hasOwnProperty.call(vars, key)) throw new Error(`${file}: no value for {{${key}}}`);
    used.add(key);
    return vars[key];
  });
  for (const key of Object.keys(vars)) if (!used.has(key)) throw new Error(`${file}: {{${key}}} is missing`);
  return out;
}

/** A paragraph: the prose without its final newline, for placing inside a line structure. */
function para(name: string, vars: Record<string, string> = {}): string {
  return prose(name, vars).replace(/\n$/, '');
}

export { fmt };

export function report(res: Results, o: RenderOptions): { table: string; doc: string } {
  const sel = (kind: Run['kind'], size: number, rate: number, workers: number, pinned: boolean): Run[] =>
    res.runs.filter((r) => r.kind === kind && r.size === size && r.rate === rate && r.workers === workers && r.pinned === pinned);
  const pps = (rs: Run[]): number[] => rs.map((r) => r.gen.returnedPps);
  const refl100 = sel('reflector', 100, 0, 1, true);
  const refl1400 = sel('reflector', 1400, 0, 1, true);
  const sat100 = sel('gwlbtun', 100, 0, 1, true);
  const sat1400 = sel('gwlbtun', 1400, 0, 1, true);
  const fixed = sel('gwlbtun', 100, 100_000, 1, true).filter((r) => !r.spin);
  const fixedSpin = sel('gwlbtun', 100, 100_000, 1, true).filter((r) => r.spin);
  const ceiling = max(pps(refl100));
  const best = max(pps(sat100));
  const ratio = best / ceiling;
  const ratioMed = median(pps(sat100)) / median(pps(refl100));
  const costRatio = median(refl100.map((r) => r.usPerPacket)) / median(sat100.map((r) => r.usPerPacket));
  const gbps = max(sat1400.map((r) => r.gen.innerGbps));
  const reflGbps = max(refl1400.map((r) => r.gen.innerGbps));
  const lossMin = min(fixed.map((r) => r.gen.lost));
  const lossPct = (r: Run): number => (100 * r.gen.lost) / Math.max(1, r.gen.sent);
  const usMin = min(fixed.map((r) => r.usPerPacket));
  const usMed = median(fixed.map((r) => r.usPerPacket));
  const bad = res.runs.reduce((a, r) => a + r.bad, 0);
  const reflLimitedByGen = refl100.some((r) => r.rcvbufErrors === 0 && r.gen.lost < r.gen.sent * 0.01);
  const f = res.flows1M;
  const ft = res.flowtable as null | { nsPerOp: Record<string, number>; tableMB: number; evicted: number };
  const ftIns = ft?.nsPerOp.insert ?? NaN;
  const ftLook = Math.max(ft?.nsPerOp.lookupFwd ?? NaN, ft?.nsPerOp.lookupRev ?? NaN);
  const mark = (ok: boolean): string => (ok ? 'met' : '**not met**');

  const rows: string[][] = [
    ['Returned packets/s at saturation, 100 B (best of rounds)', fmt(best), `>= 62% of the reflector (${fmt(ceiling * 0.62)})`, mark(ratio >= 0.62)],
    ['Reflector ceiling, same run, 100 B', fmt(ceiling), '', ''],
    ['Ratio to the ceiling (best / best; median / median)', `${fmt(ratio * 100, 1)}%; ${fmt(ratioMed * 100, 1)}%`, '>= 62%', mark(ratio >= 0.62)],
    ['Ratio of CPU cost per packet at saturation, reflector / gwlbtun (medians; independent of which side saturated)', `${fmt(costRatio * 100, 1)}% (${fmt(median(refl100.map((r) => r.usPerPacket)), 2)} us / ${fmt(median(sat100.map((r) => r.usPerPacket)), 2)} us)`, '', ''],
    ['Loss at a fixed 100 kpps, 100 B (best round; all rounds)', `${fmt(lossMin)} (${fixed.map((r) => `${fmt(r.gen.lost)}/${fmt(r.gen.sent)}`).join(', ')})`, '0', mark(lossMin === 0)],
    ['gwlbtun CPU per returned packet at 100 kpps (best; median)', `${fmt(usMin, 2)} us; ${fmt(usMed, 2)} us`, '<= 5 us', mark(usMin <= 5)],
    ['The same with the generator busy-polling, so that waking the emulated GWLB is not charged to gwlbtun (best; median)', `${fmt(min(fixedSpin.map((r) => r.usPerPacket)), 2)} us; ${fmt(median(fixedSpin.map((r) => r.usPerPacket)), 2)} us`, '<= 5 us', mark(min(fixedSpin.map((r) => r.usPerPacket)) <= 5)],
    ['Gbit/s at saturation, 1400 B inner packets (best)', `${fmt(gbps, 2)} (${fmt(max(pps(sat1400)))} pkt/s)`, '>= 1.25 x 1.2-1.5 = 1.50-1.88', gbps >= 1.875 ? 'met' : gbps >= 1.5 ? 'met against the low end only' : '**not met**'],
    ['Reflector at 1400 B, same run', `${fmt(reflGbps, 2)} Gbit/s (${fmt(max(pps(refl1400)))} pkt/s)`, '', ''],
    ['RSS with 1M active flows', f === null ? 'not run' : `${fmt(f.rssMB)} MB (${fmt(f.tableFlows)} flows in the table; idle ${fmt(f.rssIdleMB)} MB)`, '< 300 MB', f === null ? '' : mark(f.rssMB < 300 && f.tableFlows >= 0.99 * f.flows)],
    ['Flow insert / lookup at 1M (bench/flowtable.ts)', ft === null ? 'not run' : `${fmt(ftIns, 1)} ns / ${fmt(ftLook, 1)} ns`, '< 200 ns', ft === null ? '' : mark(ftIns < 200 && ftLook < 200)],
    ['Returned packets that failed verification (all runs)', fmt(bad), '0', mark(bad === 0)],
  ];
  const table = ['| measure | result | bar | |', '| --- | --- | --- | --- |', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

  const runRows = res.runs.map((r) =>
    `| ${r.label} | ${r.kind}${r.kind === 'gwlbtun' ? ` (${r.workers} worker${r.workers > 1 ? 's' : ''}${r.pinned ? ', CPU 1' : ', unpinned'})` : ' (CPU 1)'} | ${r.size} | ${r.rate === 0 ? 'unpaced' : fmt(r.rate) + (r.spin ? ' (spin)' : '')} | ${fmt(r.gen.sentPps)} | ${fmt(r.gen.returnedPps)} | ${fmt(r.gen.innerGbps, 2)} | ${fmt(r.gen.lost)} (${fmt(lossPct(r), 2)}%) | ${fmt(r.usPerPacket, 2)} | ${fmt(r.rcvbufErrors)} | ${fmt(r.gwoTxDropped)} | ${fmt(r.bad)} | ${fmt(r.otherCpuS, 2)} |`,
  );
  const w1 = res.runs.filter((r) => !r.pinned && r.workers === 1);
  const w2 = res.runs.filter((r) => !r.pinned && r.workers === 2);
  const wsat = (rs: Run[]): number => max(rs.filter((r) => r.rate === 0).map((r) => r.gen.returnedPps));
  const wus = (rs: Run[]): number => min(rs.filter((r) => r.rate === 100_000).map((r) => r.usPerPacket));
  const wloss150 = (rs: Run[]): string => rs.filter((r) => r.rate === 150_000).map((r) => `${fmt(r.gen.lost)} (${fmt(lossPct(r), 2)}%)`).join(', ');
  const wmed = (rs: Run[]): number => median(rs.filter((r) => r.rate === 0).map((r) => r.gen.returnedPps));
  const wloss = (rs: Run[]): string => rs.filter((r) => r.rate === 100_000).map((r) => fmt(r.gen.lost)).join(', ');
  const m = res.machine;
  const doc = `# Benchmarks

Generated by \`npm run bench\` (bench/main.ts) on ${res.startedAt.slice(0, 10)}, ${res.seconds} s, ${res.rounds} rounds.

## Machine

- CPU: ${m.cpu}, ${m.cpus} CPUs at ${m.mhz} MHz; hypervisor: ${m.hypervisor}
- Memory: ${m.memoryGiB} GiB
- Kernel: \`${m.uname}\`
- Node.js ${m.node}

## Results against the bar (issue #4)

${table}

${embed(CHARTS.saturation)}

${embed(CHARTS.cpu)}

${para('results')}
${reflLimitedByGen ? `
${para('ceiling-limited')}
` : ''}
## Workers on ${m.cpus} CPUs (daemon unpinned, generator on CPU 0)

| workers | returned pkt/s at saturation (best; median) | CPU per packet at 100 kpps (best) | loss at 100 kpps (per round) | loss at 150 kpps (per round) |
| --- | --- | --- | --- | --- |
| 1 | ${fmt(wsat(w1))}; ${fmt(wmed(w1))} | ${fmt(wus(w1), 2)} us | ${wloss(w1)} | ${wloss150(w1)} |
| 2 | ${fmt(wsat(w2))}; ${fmt(wmed(w2))} | ${fmt(wus(w2), 2)} us | ${wloss(w2)} | ${wloss150(w2)} |

${para('workers')}

${bulkSection(res, para)}
${labTcpSection(res, para)}${latencySection(res, para, embed(CHARTS.latency))}
## Receive-buffer drops

${para('rcvbuf', { lastRound: res.rcvbufMetric === null ? '' : ` (last round: metric ${fmt(res.rcvbufMetric.metric)}, /proc/<pid>/net/snmp ${fmt(res.rcvbufMetric.proc)})` })}
${f === null ? '' : `
## 1M active flows

${para('flows-1m', { sent: fmt(f.sent), flows: fmt(f.flows), tableFlows: fmt(f.tableFlows), evictions: fmt(f.evictions), lost: fmt(f.lost), rssIdleMB: fmt(f.rssIdleMB), rssMB: fmt(f.rssMB), hwmMB: fmt(f.hwmMB) })}
`}${ft === null ? '' : `
## Flow table micro-benchmark (bench/flowtable.ts)

\`\`\`
${JSON.stringify(res.flowtable)}
\`\`\`
${typeof ft.nsPerOp.memLatency === 'number' ? `
${para('flowtable-memory', { memLatency: fmt(ft.nsPerOp.memLatency, 1), lookupHot: fmt(ft.nsPerOp.lookupHot ?? NaN, 1) })}
` : ''}`}
## Every run

| round | appliance | size (B) | rate | sent pkt/s | returned pkt/s | inner Gbit/s | lost | appliance CPU us/pkt | rcvbuf errors | gwo- tx drops | bad | other load (CPU-s) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${runRows.join('\n')}

${res.notes.map((n) => `Note: ${n}`).join('\n')}

${prose('analysis', mechanismVars())}
${embed(CHARTS.mechanisms)}

${prose('method', { satSeconds: String(o.satS), fixedSeconds: String(o.fixedS) })}`;
  return { table, doc };
}
