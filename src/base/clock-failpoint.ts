// Fault injection for the tests: a wall-clock step (what NTP or settimeofday does) inside the
// daemon, without touching the machine's clock.
//
//   GWLBTUN_FAILPOINT_CLOCK_STEP=<signed seconds>@<CLOCK_MONOTONIC milliseconds>
//
// From the given instant of the system's monotonic clock on (process.hrtime() of any process on
// the machine, so a test can choose it from its own clock), Date.now() in every thread of the
// daemon is off by that many seconds. A thread started after the instant also sees
// performance.timeOrigin off by the step, as on runtimes that take a worker's time origin from
// the wall clock when the worker starts (Node 20 gives every thread the process's start time, but
// nothing should depend on that). The monotonic clock itself is left alone: a wall-clock step does
// not move it. Installed first thing by the main thread (src/cli.ts) and by every worker.

import { hrtimeMs } from './clock';

const ENV = 'GWLBTUN_FAILPOINT_CLOCK_STEP';

export interface ClockStep {
  stepMs: number;
  /** CLOCK_MONOTONIC instant (ms) of the step. */
  atMs: number;
}

/** Parse the variable's value; null when unset or empty; throws a one-line error when malformed. */
export function parseClockStep(v: string | undefined): ClockStep | null {
  if (v === undefined || v === '') return null;
  const m = /^([+-]?\d+)@(\d+)$/.exec(v);
  if (m === null) throw new Error(`${ENV}: expected <signed seconds>@<monotonic ms>, got ${JSON.stringify(v)}`);
  return { stepMs: Number(m[1]) * 1000, atMs: Number(m[2]) };
}

let installed = false;

/** Install the step in the calling thread when the variable asks for one (once per thread). */
export function installClockStepFromEnv(): void {
  const step = parseClockStep(process.env[ENV]);
  if (step === null || installed) return;
  installed = true;
  const realNow = Date.now.bind(Date);
  Date.now = (): number => (hrtimeMs() >= step.atMs ? realNow() + step.stepMs : realNow());
  if (hrtimeMs() >= step.atMs) {
    Object.defineProperty(performance, 'timeOrigin', { value: performance.timeOrigin + step.stepMs, configurable: true });
  }
}
