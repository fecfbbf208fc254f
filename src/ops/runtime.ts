// The main thread's own latency figures for /metrics (issue 20), beside the workers' (their loop
// turns and GC pauses live in their counter blocks: src/dataplane/counters.ts, "Histograms"):
//   - event-loop delay: a timer every TICK_MS, each tick recording how late it fired (what a
//     health check, a control message or a hook's completion waited on this thread). Not
//     perf_hooks.monitorEventLoopDelay: it keeps its own HDR histogram and gives percentiles, not
//     the counts per fixed bucket a Prometheus histogram needs, and cannot be read as a delta;
//   - GC pauses: a PerformanceObserver of 'gc' entries (this thread returns to its event loop,
//     where they are delivered; the workers' never does, hence v8.GCProfiler there).
// Both in the same cell layout as a worker's histograms (recordHist), started with the health
// server (the only reader) and stopped with it. The timer is unref'd: it never keeps the
// process alive.

import { PerformanceObserver, performance } from 'node:perf_hooks';
import { HIST_CELLS, recordHist } from '../dataplane/counters';

/** Sampling period of the event-loop delay. */
export const TICK_MS = 50;

export class MainThreadStats {
  /** Event-loop delay and GC pauses of this thread (recordHist layout, base 0). */
  readonly loopDelay = new Float64Array(HIST_CELLS);
  readonly gc = new Float64Array(HIST_CELLS);
  private timer: NodeJS.Timeout | null = null;
  private observer: PerformanceObserver | null = null;
  private expected = 0;

  start(): void {
    if (this.timer !== null) return;
    this.expected = performance.now() + TICK_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      recordHist(this.loopDelay, 0, Math.max(0, now - this.expected) / 1000);
      // The next tick is due one period after this one fired (setInterval reschedules so).
      this.expected = now + TICK_MS;
    }, TICK_MS);
    this.timer.unref();
    try {
      this.observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) recordHist(this.gc, 0, e.duration / 1000);
      });
      this.observer.observe({ entryTypes: ['gc'] });
    } catch {
      this.observer = null; // no GC entries on this runtime: the histogram stays empty
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.observer?.disconnect();
    this.observer = null;
  }
}
