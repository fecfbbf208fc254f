// Unit tests of the daemon's clock (src/base/clock.ts) and of the wall-clock step failpoint
// (src/base/clock-failpoint.ts): one monotonic clock in every thread, unmoved by a step of the wall
// clock, also in a thread started after the step.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { hrtimeMs, monoMs, nowTicks, TICKS_PER_SECOND } from '../../src/base/clock';
import { parseClockStep } from '../../src/base/clock-failpoint';

const CLOCK_JS = path.join(__dirname, '..', '..', 'src', 'base', 'clock.js');
const FAILPOINT_JS = path.join(__dirname, '..', '..', 'src', 'base', 'clock-failpoint.js');

test('clock: monoMs() is process.hrtime() (CLOCK_MONOTONIC) in ms; ticks are its deciseconds', () => {
  assert.equal(TICKS_PER_SECOND, 10);
  for (let i = 0; i < 100; i++) {
    const a = hrtimeMs();
    const m = monoMs();
    const b = hrtimeMs();
    assert.ok(m >= a - 0.5 && m <= b + 0.5, `${a} <= ${m} <= ${b}`);
  }
  const t = nowTicks();
  assert.ok(Number.isInteger(t));
  assert.ok(Math.abs(t - monoMs() / 100) <= 1);
  let prev = monoMs();
  for (let i = 0; i < 10000; i++) {
    const v = monoMs();
    assert.ok(v >= prev, 'never goes back');
    prev = v;
  }
  // It advances with time: 50 ms of sleep are 50 ms (generous bound above: a loaded machine).
  const s0 = monoMs();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  const dt = monoMs() - s0;
  assert.ok(dt >= 49 && dt < 2000, `slept 50 ms, clock moved ${dt} ms`);
});

test('failpoint: GWLBTUN_FAILPOINT_CLOCK_STEP is <signed seconds>@<monotonic ms>; anything else is a one-line error', () => {
  assert.equal(parseClockStep(undefined), null);
  assert.equal(parseClockStep(''), null);
  assert.deepEqual(parseClockStep('+3600@12345'), { stepMs: 3_600_000, atMs: 12345 });
  assert.deepEqual(parseClockStep('-3600@0'), { stepMs: -3_600_000, atMs: 0 });
  assert.deepEqual(parseClockStep('7@1'), { stepMs: 7000, atMs: 1 });
  for (const bad of ['3600', '+3600@', '@5', '1.5@5', 'x@5', '+3600@-5', ' +1@5']) {
    assert.throws(() => parseClockStep(bad), /^Error: GWLBTUN_FAILPOINT_CLOCK_STEP: expected <signed seconds>@<monotonic ms>/, bad);
  }
});

interface Sample {
  wallMinusMono: number;
  mono: number;
  timeOrigin: number;
  /** The former tick source: the thread's time origin plus performance.now(). */
  originPlusNow: number;
}

/** Run `body` (JavaScript, with sample() and sleepMs() in scope; posts its result) in a worker
 * thread whose environment asks for a wall-clock step. */
function inWorker(env: Record<string, string>, body: string): Promise<unknown> {
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { installClockStepFromEnv } = require(${JSON.stringify(FAILPOINT_JS)});
    installClockStepFromEnv();
    const { monoMs, hrtimeMs } = require(${JSON.stringify(CLOCK_JS)});
    const sample = () => {
      const mono = monoMs();
      return { wallMinusMono: Date.now() - mono, mono, timeOrigin: performance.timeOrigin, originPlusNow: performance.timeOrigin + performance.now() };
    };
    const sleepMs = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    ${body}`;
  const w = new Worker(code, { eval: true, env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    w.once('message', (m) => {
      void w.terminate();
      resolve(m);
    });
    w.once('error', reject);
  });
}

test('a wall-clock step moves Date.now() (and the time origin of a thread started after it), never monoMs()', async () => {
  const at = Math.ceil(hrtimeMs() + 300);
  const stepEnv = { GWLBTUN_FAILPOINT_CLOCK_STEP: `+3600@${at}` };
  // A thread running across the step.
  const across = (await inWorker(stepEnv, `
    const before = sample();
    while (hrtimeMs() < ${at} + 20) sleepMs(10);
    parentPort.postMessage({ before, after: sample() });`)) as { before: Sample; after: Sample };
  const jump = across.after.wallMinusMono - across.before.wallMinusMono;
  assert.ok(Math.abs(jump - 3_600_000) < 1000, `Date.now() jumped by ${jump} ms`);
  assert.ok(across.after.mono - across.before.mono < 5000, 'monoMs() did not');
  assert.equal(across.after.timeOrigin, across.before.timeOrigin, 'a running thread keeps its time origin');

  // A thread started after the step: its time origin is off by the hour, its monoMs() is not.
  const m0 = monoMs();
  const late = (await inWorker(stepEnv, 'parentPort.postMessage(sample());')) as Sample;
  const m1 = monoMs();
  assert.ok(late.mono >= m0 - 0.5 && late.mono <= m1 + 0.5, `worker ${late.mono} within [${m0}, ${m1}]`);
  assert.equal(late.timeOrigin - performance.timeOrigin, 3_600_000);
  const oldTickSkew = late.originPlusNow - (performance.timeOrigin + performance.now());
  assert.ok(Math.abs(oldTickSkew - 3_600_000) < 1000, `timeOrigin + now() would disagree by ${oldTickSkew} ms`);

  // Without the variable nothing changes.
  const plain = (await inWorker({ GWLBTUN_FAILPOINT_CLOCK_STEP: '' }, 'parentPort.postMessage(sample());')) as Sample;
  assert.equal(plain.timeOrigin, performance.timeOrigin);
  assert.ok(Math.abs(plain.wallMinusMono - (Date.now() - monoMs())) < 1000);
});
