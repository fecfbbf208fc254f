// gwlbtun at a fixed 100 kpps of 100-byte packets for fixedS seconds (then up to 1 s for
// stragglers): loss (sent - verified) and the appliance's CPU per returned packet. Twice: with the
// generator sleeping between paced bursts, and busy-polling ("spin"), so that waking the
// emulated GWLB is not charged to gwlbtun.

import type { Bg } from '../lib/bg';
import { measure } from '../lib/measure';
import type { BenchContext } from './context';

export const FIXED_RATE = 100_000;

export async function fixedRate(c: BenchContext, daemon: Bg, round: number, kind: 'gwlbtun' | 'baseline' = 'gwlbtun'): Promise<void> {
  for (const spin of [false, true]) {
    c.res.runs.push(await measure(c.t, kind, `round ${round}`, daemon.pid, 1, true, { size: 100, rate: FIXED_RATE, seconds: c.fixedS, ttlDec: 1, settleMs: 1000, spin }));
  }
}
