// Thread scheduling (src/io/sched.ts): the running daemon's workers have the short slice, its main
// thread is SCHED_BATCH, and a hook it runs is an ordinary SCHED_OTHER process; with
// GWLBTUN_SCHED=off every thread keeps the default. Read from /proc/PID/task/TID/sched.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WORKER_SLICE_NS } from '../../src/io/sched';
import { runEmulator, startDaemon, stopDaemon, useEnv, waitFor } from './lib';

interface Sched { tid: number; policy: number; slice: number }

function threads(pid: number): Sched[] {
  const out: Sched[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const t = fs.readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8');
      out.push({ tid: Number(tid), policy: Number(/^policy\s*:\s*(\d+)/m.exec(t)![1]), slice: Number(/^se\.slice\s*:\s*(\d+)/m.exec(t)?.[1] ?? 0) });
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

/** EEVDF custom slices: Linux 6.12 and later. */
function kernelHasSlices(): boolean {
  const [maj, min] = os.release().split('.').map(Number) as [number, number];
  return maj > 6 || (maj === 6 && min >= 12);
}

describe('thread scheduling', () => {
  const env = useEnv('sched');

  test('workers: short slice; main thread: SCHED_BATCH; a hook: SCHED_OTHER', async () => {
    const hook = path.join(env.dir, 'sched-hook.sh');
    const rec = path.join(env.dir, 'hook-sched');
    fs.writeFileSync(hook, `#!/bin/sh\ngrep '^policy' /proc/$$/sched > ${rec}\n`, { mode: 0o755 });
    const d = await startDaemon(env.t, ['-c', hook, '--udpthreads', '2']);
    try {
      const main = () => threads(d.pid).find((t) => t.tid === d.pid)!;
      assert.equal(main().policy, 3, 'main thread SCHED_BATCH');
      const ts = threads(d.pid);
      const workers = ts.filter((t) => t.tid !== d.pid && t.policy === 0 && t.slice === WORKER_SLICE_NS);
      if (kernelHasSlices()) assert.equal(workers.length, 2, `two worker threads with the short slice: ${JSON.stringify(ts)}`);
      await runEmulator(env.t, ['--endpoints', '1a1', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '20', '--packets', '2', '--settle-ms', '300', '--progress-ms', '0']);
      await waitFor('the CREATE hook ran', () => fs.existsSync(rec) && fs.readFileSync(rec, 'utf8').length > 0, 10000);
      assert.match(fs.readFileSync(rec, 'utf8'), /^policy\s*:\s*0$/m, 'the hook runs as SCHED_OTHER');
      assert.equal(main().policy, 3, 'the main thread is SCHED_BATCH again after the spawn');
    } finally {
      await stopDaemon(d);
    }
  });

  test('GWLBTUN_SCHED=off leaves every thread as started', async () => {
    const d = await startDaemon(env.t, [], { GWLBTUN_SCHED: 'off' });
    try {
      const ts = threads(d.pid);
      assert.ok(ts.every((t) => t.policy === 0), JSON.stringify(ts));
      assert.ok(!ts.some((t) => t.slice === WORKER_SLICE_NS), JSON.stringify(ts));
    } finally {
      await stopDaemon(d);
    }
  });
});
