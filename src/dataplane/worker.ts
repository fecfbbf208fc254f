// The data-plane worker thread's entry: what the main thread passed (workerData) in, one packet
// loop (src/dataplane/loop.ts) run until the main thread sets the stop flag, and the recording
// of this thread's GC pauses into its counter block (in the loop's housekeeping). Nothing else
// lives here, so the loop itself can be unit-tested without threads, root or devices (over
// src/testkit/fake.ts).

import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { native } from '../io/native';
import { scheduleWorker } from '../io/sched';
import { FlowTable } from '../flow/table';
import { installClockStepFromEnv } from '../base/clock-failpoint';
import { workerBlock } from './counters';
import { GcPauses } from './gcpauses';
import { CTRL_CELLS, type FromWorker, type ToWorker, type WorkerConfig } from './messages';
import { createLoop } from './loop';

installClockStepFromEnv(); // test knob: a faked wall-clock step (src/base/clock-failpoint.ts)

const cfg = workerData as WorkerConfig;
const port = (workerData as { port: MessagePort }).port;
const nat = native();

if (cfg.startDelayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, cfg.startDelayMs); // failpoint slow-start
if (cfg.cpus !== null && cfg.cpus.length > 0) nat.setAffinity(cfg.cpus);
// A short time slice: this thread runs as soon as a packet wakes it (src/io/sched.ts).
const schedNote = scheduleWorker(nat);
if (schedNote !== null) parentPort!.postMessage({ t: 'log', index: cfg.index, level: 1, section: 'core', msg: schedNote } satisfies FromWorker);

const counters = workerBlock(cfg.counterSab, cfg.index, cfg.maxEndpoints);

// This thread's GC pauses, drained into its counter block in the loop's housekeeping.
const gc = new GcPauses(counters);

createLoop(cfg, {
  nat,
  housekeeping: () => gc.drain(),
  // The sockets and the epoll set in cfg were opened by the main thread, which owns them (see
  // WorkerConfig): it closes them when this thread exits, even if it never reaches a finally.
  counters,
  ctrl: new Int32Array(cfg.ctrlSab, cfg.index * CTRL_CELLS * 4, CTRL_CELLS),
  flows: cfg.flowSab === null ? null : new FlowTable(cfg.flowSab),
  post: (m: FromWorker) => parentPort!.postMessage(m),
  receive: () => receiveMessageOnPort(port)?.message as ToWorker | undefined,
}).run();
