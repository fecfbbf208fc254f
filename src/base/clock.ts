// The daemon's one clock for durations: the machine's monotonic clock (CLOCK_MONOTONIC, what
// process.hrtime() reads), in milliseconds. It is the same clock in every thread, in a worker
// restarted at any time, and in every process on the machine, and a wall-clock step (NTP,
// settimeofday) does not move it. Every duration -- flow idle time, endpoint idle time (-t), hold
// time, refusal windows, heartbeats, uptime, log rate limits -- is a difference of two readings
// of it. Date.now() and performance.timeOrigin follow the wall clock and appear only where a
// time of day is shown to people (log timestamps). See docs/architecture.md ("Time").
//
// Cost: performance.now() is process.hrtime() minus a constant (the process's start), so monoMs()
// adds that constant, read once per thread. Measured on the 2-core test machine: about 0.13 us,
// like Date.now() (0.10 us) and the former timeOrigin-based ticks (0.16 us). It allocates a
// little, though (Node 20-24: an argument array in Node's receiver check, and the boxed double;
// process.hrtime() allocates an array, process.hrtime.bigint() a BigInt): 10 million calls cost
// 150-300 scavenges. So the data-plane worker does not read it in its loop: it reads the same
// clock through the addon into a typed array (monoInto, src/dataplane/loop.ts). Elsewhere (the
// main thread, a few readings a second) it does not matter.
//
// Flow-table ticks are deciseconds (100 ms) of the same clock. The flow table stores them in Int32
// words and compares them only through the 32-bit wrapping difference ((a - b) | 0), so a tick
// value passing 2^31 changes nothing; only differences must stay below 2^31 ticks (6.8 years).

export const TICKS_PER_SECOND = 10;

/** process.hrtime() in milliseconds (allocates: for calibration and tests). */
export function hrtimeMs(): number {
  const t = process.hrtime();
  return t[0] * 1000 + t[1] / 1e6;
}

/** process.hrtime() - performance.now() of this thread, from the closest of a few paired readings. */
function calibrate(): number {
  performance.now(); // the first call of a thread may load code: keep it out of the pairs
  let gap = Infinity;
  let offset = 0;
  for (let i = 0; i < 8; i++) {
    const a = hrtimeMs();
    const p = performance.now();
    const b = hrtimeMs();
    if (b - a < gap) {
      gap = b - a;
      offset = (a + b) / 2 - p;
    }
  }
  return offset;
}

const HR_OFFSET_MS = calibrate();

/** The monotonic clock (CLOCK_MONOTONIC) in milliseconds, the same in every thread. */
export function monoMs(): number {
  return HR_OFFSET_MS + performance.now();
}

/** Flow-table ticks: deciseconds of monoMs(). */
export function nowTicks(): number {
  return ticksOf(monoMs());
}

/** The flow-table tick of a monoMs() reading. */
export function ticksOf(ms: number): number {
  return Math.floor(ms / 100);
}
