// Latency percentiles of the probe scenario (bench/scenarios/latency.ts): round-trip times in, the
// figures the document shows out. Pure, so that a unit test pins them (test/unit/bench-latency.test.ts).
//
// Nearest-rank percentiles: p-th percentile = the smallest sample with at least p% of the samples
// at or below it (sorted[ceil(p/100 * n) - 1]); no interpolation, so every figure is a time a probe
// actually took. With 60,000 probes p99.9 is the 60th-worst probe.

/** The percentiles reported, as keys of Percentiles. */
export const PERCENTILES = [
  { key: 'p50', p: 50, label: 'p50' },
  { key: 'p90', p: 90, label: 'p90' },
  { key: 'p99', p: 99, label: 'p99' },
  { key: 'p999', p: 99.9, label: 'p99.9' },
] as const;
export type PercentileKey = (typeof PERCENTILES)[number]['key'] | 'max';

/** Microseconds; NaN when there was no sample. */
export type Percentiles = Record<PercentileKey, number>;

/** Nearest-rank percentile of an ascending-sorted array (NaN if empty). */
export function nearestRank(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n - 1e-9)));
  return sorted[rank - 1];
}

/** The reported percentiles of round-trip times given in nanoseconds, in microseconds. */
export function percentilesUs(rttNs: ArrayLike<number>): Percentiles {
  const s = Float64Array.from(rttNs, (x) => x / 1000).sort();
  const out = { max: s.length === 0 ? NaN : s[s.length - 1] } as Percentiles;
  for (const q of PERCENTILES) out[q.key] = nearestRank(s, q.p);
  return out;
}

/** The RTT file `gen probe --out` writes: uint32 little-endian nanoseconds, one per returned probe. */
export function readRttFile(buf: Buffer): Uint32Array {
  const n = Math.floor(buf.length / 4);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}
