// The state file's writer thread (src/control/state.ts has the format and the reasons): reads the
// shared flow table (its SharedArrayBuffer, as the data-plane workers do) into one buffer sized
// from --max-flows and allocated once, and writes the file, on each request of the main thread.
// A thread of its own, so that the main thread -- which shares a CPU with the workers on a 2-vCPU
// appliance (src/io/sched.ts) -- never spends the ~0.2 s a million flows take; and in SCHED_BATCH,
// so that its wake-ups never preempt a worker (a kernel that refuses leaves it as it was). The
// seqlock read (FlowTable.snapshotInto) runs beside the workers' writes: a flow being written at
// that moment is read again, at worst left out of this snapshot.

import { parentPort, workerData } from 'node:worker_threads';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { FlowTable } from '../flow/table';
import { native } from '../io/native';
import { allocStateBuffer, encodeState, writeStateFile, type StateReply, type StateRequest, type StateWorkerData } from './state';

/** This thread's CPU time in ms (/proc/thread-self/schedstat: ns on a CPU), or NaN. */
export function threadCpuMs(): number {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
  } catch {
    return NaN;
  }
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'file' in workerData) {
  const port = parentPort;
  const cfg = workerData as StateWorkerData;
  try {
    native().setSched(true, 0);
  } catch {
    // refused: an ordinary thread
  }
  const table = cfg.flowSab === null ? null : new FlowTable(cfg.flowSab);
  const buf = allocStateBuffer(table === null ? 0 : table.capacity);
  port.on('message', (m: StateRequest) => {
    const t0 = performance.now();
    const c0 = threadCpuMs();
    try {
      const flows = table === null ? 0 : table.snapshotInto(buf.records);
      const len = encodeState(buf, flows, m.json);
      if (len < 0) throw new Error('the endpoints do not fit the state file');
      writeStateFile(cfg.file, buf.bytes, len);
      port.postMessage({ t: 'done', flows, bytes: len, wallMs: performance.now() - t0, cpuMs: threadCpuMs() - c0 } satisfies StateReply);
    } catch (e) {
      port.postMessage({ t: 'error', message: (e as Error).message } satisfies StateReply);
    }
  });
}
