// Thread scheduling on few CPUs (issue 20: the tail of a packet's wait in gwlbtun).
//
// A worker sleeps in epoll_wait and should run the moment a packet arrives. The main thread works
// in bursts: its garbage collections (V8's memory reducer compacts its heap for 15-25 ms a few
// seconds after start-up), the flow-table sweep, status and metrics rendering, hook output. On
// an appliance of 2 vCPUs (and in `npm run bench`, which pins the whole process to one CPU as it
// does the C++ original) they share a CPU, and a packet that arrives during a burst waits for the
// burst's time slice to end: Linux's EEVDF lets a running task finish its slice (0.7 ms x
// (1 + log2 CPUs), 1.4 ms on 2 CPUs) before a task that just woke may preempt it, unless the
// woken task asked for a shorter slice than the running one ("PREEMPT_SHORT", Linux 6.12+). So:
// - workers: SCHED_OTHER with a WORKER_SLICE_NS slice. The slice changes how soon a woken worker
//   runs and how long it runs before another task may take the CPU, not its share of the CPU
//   (that is the nice weight, unchanged), so a saturated worker gets what it got before.
// - the main thread: SCHED_BATCH, whose wake-ups (timers, health checks, hook output) never
//   preempt a running worker; it still gets its full share, from the tick.
// - children must not inherit SCHED_BATCH (a hook may start a per-endpoint daemon that the
//   operator expects to be an ordinary process): spawnNormally() runs spawn() (whose fork
//   copies the calling thread's policy) with the main thread back in SCHED_OTHER.
// Both are allowed to any thread without CAP_SYS_NICE (switching between SCHED_OTHER and
// SCHED_BATCH, and slices, need no privilege). A kernel that refuses leaves the defaults: logged
// once, nothing else changes. GWLBTUN_SCHED=off leaves every thread as started (for A/B runs:
// `npm run bench -- --only-latency` measures both).
// Alternatives rejected: real-time classes (SCHED_FIFO) need CAP_SYS_NICE, which the systemd unit
// does not grant, and a busy-looping RT thread can starve the kernel's own work on its CPU;
// nice values of the main thread are inherited by workers re-spawned after a crash, and lowering
// them back needs CAP_SYS_NICE; moving the main thread off the workers' CPUs is impossible when
// the process is allowed a single CPU (as under `taskset -c 1`, and in the benchmark).
// Measured: a C experiment on one CPU (a thread woken every 0.5 ms beside one busy 1.5 ms out of
// every 9.5 ms) waited 1.4 ms at p99 with default slices, 0.08-0.25 ms with a 0.1 ms slice in two
// of four quiet runs (the other two: 2.9 ms); the benchmark's same-run figures: docs/benchmarks.md
// "Latency".

import type { NativeAddon } from './native';

/** A worker's slice: the kernel's minimum (0.1 ms), below any default slice. */
export const WORKER_SLICE_NS = 100_000;

function enabled(): boolean {
  return process.env.GWLBTUN_SCHED !== 'off';
}

/** Called by each worker thread for itself. Returns a line for the log when the kernel refused
 * (null when done or switched off). The slice in effect is 0 on kernels before 6.12, which then
 * keep their default wake-up preemption: not an error. */
export function scheduleWorker(nat: NativeAddon): string | null {
  if (!enabled()) return null;
  try {
    nat.setSched(false, WORKER_SLICE_NS);
    return null;
  } catch (e) {
    return `worker scheduling left as it was: ${(e as Error).message}`;
  }
}

let mainBatch = false;
let addon: NativeAddon | null = null;

/** Called once by the main thread, after start-up. Returns a line for the log when refused. */
export function scheduleMain(nat: NativeAddon): string | null {
  if (!enabled()) return null;
  try {
    nat.setSched(true, 0);
    mainBatch = true;
    addon = nat;
    return null;
  } catch (e) {
    return `main thread scheduling left as it was: ${(e as Error).message}`;
  }
}

/** Run fn (a spawn()) with the main thread in SCHED_OTHER, so that the child starts as an
 * ordinary process; back to SCHED_BATCH after. */
export function spawnNormally<T>(fn: () => T): T {
  const nat = addon;
  if (!mainBatch || nat === null) return fn();
  try {
    nat.setSched(false, 0);
  } catch {
    return fn(); // could not switch back: the child inherits SCHED_BATCH (harmless for a hook)
  }
  try {
    return fn();
  } finally {
    try {
      nat.setSched(true, 0);
    } catch {
      mainBatch = false;
    }
  }
}
