// One worker against two on the same machine, the daemon unpinned (free to use both CPUs; the
// generator stays on GEN_CPU): saturation, and loss and CPU per packet at 100 and 150 kpps,
// two rounds, each daemon started afresh.

import { startDaemon } from '../lib/appliance';
import { stopBg } from '../lib/bg';
import { measure } from '../lib/measure';
import type { BenchContext } from './context';

export async function workers(c: BenchContext): Promise<void> {
  for (let r = 1; r <= 2; r++) {
    for (const w of [1, 2]) {
      const d = await startDaemon(c.t, w, false);
      try {
        c.res.runs.push(await measure(c.t, 'gwlbtun', `workers ${r}`, d.pid, w, false, { size: 100, rate: 0, seconds: c.satS, ttlDec: 1, settleMs: 300 }));
        c.res.runs.push(await measure(c.t, 'gwlbtun', `workers ${r}`, d.pid, w, false, { size: 100, rate: 100_000, seconds: c.fixedS, ttlDec: 1, settleMs: 1000 }));
        c.res.runs.push(await measure(c.t, 'gwlbtun', `workers ${r}`, d.pid, w, false, { size: 100, rate: 150_000, seconds: c.fixedS, ttlDec: 1, settleMs: 1000 }));
      } finally {
        await stopBg(d);
      }
    }
  }
}
