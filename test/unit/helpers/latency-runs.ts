// Synthetic latency runs for the bench report and chart tests (bench/latency-report.ts).

import type { LatencyRun } from '../../../bench/results';

export function latencyRun(appliance: LatencyRun['appliance'], family: 4 | 6, load: LatencyRun['load'], round: number, base: number): LatencyRun {
  return {
    appliance, family, load, round, rate: 2000, sent: 1000, returned: 999, lost: 1, bad: 0, late: 0,
    pct: { p50: base, p90: base * 2, p99: base * 4, p999: base * 8, max: base * 20 },
    loadPps: load === 'loaded' ? 60_000 : 0, loadReturnedPps: load === 'loaded' ? 60_000 : 0, loadLost: 0,
  };
}

/** Two rounds of every phase: reflector 40 us at p50, gwlbtun 100 (round 1) and 120 (round 2), the original 80. */
export function latencyRuns(withOriginal = true): LatencyRun[] {
  const runs: LatencyRun[] = [];
  for (const round of [1, 2]) {
    for (const family of [4, 6] as const) {
      for (const load of ['idle', 'loaded'] as const) {
        const k = load === 'loaded' ? 2 : 1;
        runs.push(latencyRun('gwlbtun', family, load, round, (round === 1 ? 100 : 120) * k));
        if (withOriginal) runs.push(latencyRun('original', family, load, round, 80 * k));
        runs.push(latencyRun('reflector', family, load, round, 40 * k));
      }
    }
  }
  return runs;
}
