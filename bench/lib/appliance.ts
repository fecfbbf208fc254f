// The appliance side of a measurement, inside the appliance namespace: the reflector ceiling
// (`gen reflect`, pinned to APPL_CPU) or gwlbtun (bin/gwlbtun with the one-arm example hook,
// pinned to APPL_CPU or not), each started and warmed up before anything is measured.

import { metricsInNs } from '../../src/sim/nshttp';
import type { Topology } from '../../src/sim/topology';
import { startBg, stopBg, waitOutput, type Bg } from './bg';
import { APPL_CPU, DAEMON, GEN_BIN, HEALTH_PORT, HOOK, log, sleep } from './env';
import { genSend } from './gen';

export async function startReflector(t: Topology, seconds: number, gro = false): Promise<Bg> {
  const b = startBg(t.applianceNs, GEN_BIN, ['reflect', '--cpus', APPL_CPU, '--seconds', String(seconds), '--gro', gro ? '1' : '0']);
  await waitOutput(b, '"ready":true', 5000, 'reflector');
  return b;
}

// gwo-<X> of ENI 2b8ee1d4db0c51c4 (base 60), for its tx drop counter.
let gwo = '';
export function gwoName(): string {
  return gwo;
}

/** gwlbtun (bin/gwlbtun of this checkout, or `daemon`: another checkout's, for --baseline). */
export async function startDaemon(t: Topology, workers: number, pinned: boolean, extra: string[] = [], daemon = DAEMON): Promise<Bg> {
  const args = [daemon, '-c', HOOK, '-r', HOOK, '-p', String(HEALTH_PORT), '-j', '--udpthreads', String(workers), ...extra];
  const b = pinned
    ? startBg(t.applianceNs, GEN_BIN, ['exec', '--cpus', APPL_CPU, '--', process.execPath, ...args])
    : startBg(t.applianceNs, process.execPath, args);
  await waitOutput(b, 'gwlbtun started', 15000, 'gwlbtun');
  // First packets create the endpoint (TUN devices + hook); then a short unpaced burst so the
  // hot functions are optimized before anything is measured.
  await genSend(t, { size: 100, rate: 2000, seconds: 1, count: 2000, ttlDec: 1, settleMs: 1000, warmupMs: 0 });
  const m = /created (gwi-\S+) and (gwo-\S+)/.exec(b.out());
  if (m !== null) gwo = m[2];
  await genSend(t, { size: 100, rate: 0, seconds: 2, ttlDec: 1, settleMs: 300 });
  return b;
}

/** The C++ original (aws-samples' gwlbtun v3.0, built outside this repository and passed as
 * `--original BIN`): same hook, one UDP and one tunnel thread, pinned like gwlbtun, warmed up the
 * same way. It stops on SIGINT only (stopOriginal). */
export async function startOriginal(t: Topology, bin: string): Promise<Bg> {
  // Its own health port: a connection to gwlbtun's /metrics on HEALTH_PORT a moment before leaves
  // that port in TIME_WAIT for a minute, and the original binds without SO_REUSEADDR: it exited
  // at once with code 1, printing nothing, when it came right after gwlbtun in a latency round.
  const args = [bin, '-c', HOOK, '-r', HOOK, '-p', String(HEALTH_PORT + 1), '--udpthreads', '1', '--tunthreads', '1'];
  // Now and then it exits at once with code 1, printing nothing (more often on a busy machine; a
  // race of its own start-up, not understood): up to four tries, half a second apart.
  let b = startBg(t.applianceNs, GEN_BIN, ['exec', '--cpus', APPL_CPU, '--', ...args]);
  for (let attempt = 1; ; attempt++) {
    try {
      await waitOutput(b, 'started', 15000, 'original gwlbtun');
      break;
    } catch (e) {
      await b.exited;
      if (attempt === 4) throw e;
      log(`original gwlbtun exited at start (code ${b.proc.exitCode}, signal ${b.proc.signalCode}): try ${attempt + 1} of 4`);
      await sleep(500);
      b = startBg(t.applianceNs, GEN_BIN, ['exec', '--cpus', APPL_CPU, '--', ...args]);
    }
  }
  await genSend(t, { size: 100, rate: 2000, seconds: 1, count: 2000, ttlDec: 1, settleMs: 1000, warmupMs: 0 });
  const m = /New interface (gwi-\S+) and (gwo-\S+)/.exec(b.out());
  if (m !== null) gwo = m[2];
  await genSend(t, { size: 100, rate: 0, seconds: 2, ttlDec: 1, settleMs: 300 });
  return b;
}

/** SIGINT (the original's only clean stop: its destroy hook runs), then SIGKILL. */
export async function stopOriginal(b: Bg): Promise<void> {
  if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill('SIGINT');
  await stopBg(b, 8000);
}

/** GET /metrics inside the appliance namespace. */
export function metricsOf(t: Topology): Map<string, number> {
  return metricsInNs(t.applianceNs, HEALTH_PORT);
}
