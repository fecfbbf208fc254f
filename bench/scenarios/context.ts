// What every scenario gets from the runner: the topology, the results it adds its runs to, and
// the run lengths chosen on the command line.

import type { Topology } from '../../src/sim/topology';
import type { RxGroMode } from '../lib/rxgro';
import type { Results } from '../results';

export interface BenchContext {
  t: Topology;
  res: Results;
  /** Seconds of each unpaced (saturation) run. */
  satS: number;
  /** Seconds of each fixed-rate run. */
  fixedS: number;
  /** The C++ original's binary (--original BIN), measured in the bulk TCP rounds; undefined: not run. */
  original?: string;
  /** --baseline DIR: another built checkout's bin/gwlbtun, measured in the same rounds. */
  baseline?: string;
  /** --bulk-modes / --bulk-sizes: a subset of the bulk TCP runs (for profiling one of them). */
  bulkModes?: string[];
  bulkSizes?: number[];
  /** --rx-gro MODE: the bulk TCP rounds with receive-side GRO (bench/lib/rxgro.ts). */
  rxGro?: RxGroMode;
  /** --latency-probes N: probes per latency phase (default LATENCY_PROBES); --latency-load PPS:
   * the bulk load beside them (default: half of gwlbtun's saturation, measured). */
  latencyProbes?: number;
  latencyLoad?: number;
}
