// Issue 20, what operators see: the latency histograms of /metrics. A worker records each loop
// turn and its GC pauses into its counter block (src/dataplane/counters.ts "Histograms",
// src/dataplane/gcpauses.ts), the main thread its event-loop delay and GC pauses
// (src/ops/runtime.ts), and /metrics renders them as Prometheus histograms (src/ops/health.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import type { Daemon } from '../../src/control/daemon';
import { C, CounterReader, GC_HIST, HIST_BOUNDS_S, HIST_CELLS, LOOP_HIST, createCountersBuffer, histView, recordHist, workerBlock } from '../../src/dataplane/counters';
import { GcPauses } from '../../src/dataplane/gcpauses';
import { monoMs } from '../../src/base/clock';
import { metricsText } from '../../src/ops/health';
import { MainThreadStats, TICK_MS } from '../../src/ops/runtime';
import { LoopRig } from './helpers/loop-rig';
import { parsePrometheusText, type Family } from './helpers/prometheus';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('histogram cells: an observation lands in the first bucket whose bound it does not exceed; sum and count', () => {
  const h = new Float64Array(HIST_CELLS);
  recordHist(h, 0, 0); // the first bucket
  recordHist(h, 0, 0.00001); // exactly on the first bound: still the first (le = "less or equal")
  recordHist(h, 0, 0.0000101); // the second
  recordHist(h, 0, 0.003); // (0.0025, 0.005]
  recordHist(h, 0, 5); // beyond the last bound: +Inf
  const v = histView([h], 0);
  assert.equal(v.cumulative.length, HIST_BOUNDS_S.length + 1);
  assert.equal(v.cumulative[0], 2);
  assert.equal(v.cumulative[1], 3);
  assert.equal(v.cumulative[HIST_BOUNDS_S.indexOf(0.0025)], 3);
  assert.equal(v.cumulative[HIST_BOUNDS_S.indexOf(0.005)], 4);
  assert.equal(v.cumulative[HIST_BOUNDS_S.length - 1], 4);
  assert.equal(v.cumulative[HIST_BOUNDS_S.length], 5);
  assert.equal(v.count, 5);
  assert.ok(Math.abs(v.sum - 5.0030201) < 1e-12);
  // Two blocks are summed, and a histogram at another base does not see these.
  const b = new Float64Array(2 * HIST_CELLS);
  recordHist(b, HIST_CELLS, 0.02);
  assert.equal(histView([h, b.subarray(0)], 0).count, 5);
  assert.equal(histView([b], HIST_CELLS).count, 1);
});

test('a worker loop records one loop-turn observation per turn, and calls housekeeping about once a second', () => {
  let housekeeping = 0;
  const rig = new LoopRig(4, () => ({}), () => housekeeping++);
  rig.turns(5);
  const v = histView([rig.counters], LOOP_HIST);
  assert.equal(v.count, 5);
  assert.equal(v.count, rig.counters[C.LOOPS]);
  assert.equal(v.cumulative[v.cumulative.length - 1], 5);
  assert.ok(v.sum >= 0 && v.sum < 5, `sum ${v.sum}`);
  assert.equal(histView([rig.counters], GC_HIST).count, 0, 'the loop itself records no GC pauses');
  assert.equal(housekeeping, 0);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1050);
  rig.turns(1);
  assert.equal(housekeeping, 1);
});

test("GcPauses records this thread's collections into GC_HIST when drained", () => {
  const block = workerBlock(createCountersBuffer(1, 2), 0, 2);
  const gc = new GcPauses(block);
  gc.drain(); // whatever happened before: a clean start
  const before = histView([block], GC_HIST).count;
  let keep: unknown[] = [];
  for (let i = 0; i < 400_000; i++) {
    keep.push({ i, s: `x${i}` }); // young-generation garbage: scavenges
    if (keep.length > 10_000) keep = [];
  }
  gc.drain();
  const v = histView([block], GC_HIST);
  assert.ok(v.count > before, `GC pauses recorded (${v.count})`);
  assert.ok(v.sum > 0 && v.sum < 10, `sum ${v.sum}`);
  assert.equal(v.cumulative[v.cumulative.length - 1], v.count);
  assert.equal(histView([block], LOOP_HIST).count, 0);
  assert.ok(keep.length >= 0);
});

test('the main thread records its event-loop delay and its GC pauses while started, nothing after stop', async () => {
  const m = new MainThreadStats();
  m.start();
  try {
    await sleep(TICK_MS * 4 + 30);
    const d = histView([m.loopDelay], 0);
    assert.ok(d.count >= 2, `ticks ${d.count}`);
    // A blocked event loop is seen: 150 ms of synchronous work, then the next tick is late.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
    await sleep(TICK_MS + 20);
    const d2 = histView([m.loopDelay], 0);
    assert.ok(d2.count - d2.cumulative[HIST_BOUNDS_S.indexOf(0.1)] >= 1, 'a delay over 100 ms was recorded');
    v8.setFlagsFromString('--expose-gc');
    (vm.runInNewContext('gc') as () => void)();
    await sleep(50);
    assert.ok(histView([m.gc], 0).count >= 1, 'a GC pause recorded');
  } finally {
    m.stop();
  }
  const n = histView([m.loopDelay], 0).count;
  await sleep(TICK_MS * 3);
  assert.equal(histView([m.loopDelay], 0).count, n);
});

function stubDaemon(counters: CounterReader): Daemon {
  const hook = { runs: 0, failures: 0, timeouts: 0, durationMsTotal: 0 };
  return {
    healthy: () => true, shuttingDown: false, startedMs: monoMs(), sysctls: null, counters, endpoints: new Map(), flows: null, flowExpiries: 0,
    hookStats: { create: hook, destroy: hook },
    workerStatus: () => [0, 1].map((index) => ({ index, alive: true, restarts: 0, heartbeatAgeMs: 10 })),
  } as unknown as Daemon;
}

/** The series of a histogram family: per label set (le left out), its buckets, sum and count. */
function series(f: Family): Map<string, { le: [string, number][]; sum: number; count: number }> {
  const out = new Map<string, { le: [string, number][]; sum: number; count: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(rest);
    const e = out.get(k) ?? { le: [], sum: NaN, count: NaN };
    out.set(k, e);
    if (s.name.endsWith('_bucket')) e.le.push([le, s.value]);
    else if (s.name.endsWith('_sum')) e.sum = s.value;
    else if (s.name.endsWith('_count')) e.count = s.value;
  }
  return out;
}

test('/metrics: loop turns per worker, GC pauses per thread, main event-loop delay, as Prometheus histograms', () => {
  const sab = createCountersBuffer(2, 4);
  const w1 = workerBlock(sab, 1, 4);
  recordHist(w1, LOOP_HIST, 0.00002);
  recordHist(w1, LOOP_HIST, 0.3);
  recordHist(w1, GC_HIST, 0.004);
  const main = new MainThreadStats(); // not started: filled by hand
  recordHist(main.loopDelay, 0, 0.001);
  recordHist(main.gc, 0, 0.0005);
  recordHist(main.gc, 0, 0.02);
  const text = metricsText(stubDaemon(new CounterReader(sab, 2, 4)), null, main);
  const fams = parsePrometheusText(text);
  const loop = fams.get('gwlbtun_worker_loop_turn_seconds');
  const gc = fams.get('gwlbtun_gc_pause_seconds');
  const delay = fams.get('gwlbtun_main_event_loop_delay_seconds');
  assert.ok(loop && gc && delay);
  for (const f of [loop, gc, delay]) {
    assert.equal(f.type, 'histogram');
    for (const [labels, s] of series(f)) {
      assert.deepEqual(s.le.map((x) => x[0]), [...HIST_BOUNDS_S.map(String), '+Inf'], `${f.name}${labels}: every bound, in order`);
      for (let i = 1; i < s.le.length; i++) assert.ok(s.le[i][1] >= s.le[i - 1][1], `${f.name}${labels}: cumulative`);
      assert.equal(s.le[s.le.length - 1][1], s.count, `${f.name}${labels}: +Inf = count`);
      assert.ok(Number.isFinite(s.sum));
    }
  }
  const ls = series(loop);
  assert.deepEqual([...ls.keys()], ['{"worker":"0"}', '{"worker":"1"}']);
  assert.equal(ls.get('{"worker":"0"}')!.count, 0);
  const l1 = ls.get('{"worker":"1"}')!;
  assert.equal(l1.count, 2);
  assert.ok(Math.abs(l1.sum - 0.30002) < 1e-12);
  assert.deepEqual(l1.le.find((x) => x[0] === '0.000025'), ['0.000025', 1]);
  assert.deepEqual(l1.le.find((x) => x[0] === '0.25'), ['0.25', 1]);
  assert.deepEqual(l1.le.find((x) => x[0] === '0.5'), ['0.5', 2]);
  const gs = series(gc);
  assert.deepEqual([...gs.keys()], ['{"thread":"main"}', '{"thread":"worker-0"}', '{"thread":"worker-1"}']);
  assert.equal(gs.get('{"thread":"main"}')!.count, 2);
  assert.equal(gs.get('{"thread":"worker-1"}')!.count, 1);
  assert.equal(series(delay).get('{}')!.count, 1);
  // Without the main thread's stats (no health server started them): the workers' alone.
  const fams2 = parsePrometheusText(metricsText(stubDaemon(new CounterReader(sab, 2, 4))));
  assert.equal(fams2.has('gwlbtun_main_event_loop_delay_seconds'), false);
  assert.deepEqual([...series(fams2.get('gwlbtun_gc_pause_seconds')!).keys()], ['{"thread":"worker-0"}', '{"thread":"worker-1"}']);
});
