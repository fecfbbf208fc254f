// A worker's GC pauses into its counter block (GC_HIST, src/dataplane/counters.ts). A
// PerformanceObserver would deliver nothing in a worker: the packet loop never returns to the
// event loop, where its entries are delivered. v8.GCProfiler collects them inside V8 instead;
// drain() (the loop's housekeeping, about once a second) stops it, records each collection's
// pause, and starts it again -- its only allocation, once a second, never per packet. Absent
// (old Node) or failing: nothing is recorded and the data plane goes on.

import * as v8 from 'node:v8';
import { GC_HIST, recordHist } from './counters';

export class GcPauses {
  private profiler: v8.GCProfiler | null = typeof v8.GCProfiler === 'function' ? new v8.GCProfiler() : null;

  constructor(private readonly counters: Float64Array) {
    this.profiler?.start();
  }

  /** Records the pauses since the last drain. */
  drain(): void {
    const p = this.profiler;
    if (p === null) return;
    try {
      const d = p.stop() as { statistics?: { cost?: number }[] } | undefined;
      for (const s of d?.statistics ?? []) if (typeof s.cost === 'number') recordHist(this.counters, GC_HIST, s.cost / 1e6); // cost: us
      p.start();
    } catch {
      this.profiler = null; // never let the measurement stop the data plane
    }
  }
}
