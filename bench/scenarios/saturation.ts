// gwlbtun at saturation: one worker pinned to the appliance CPU, the generator unpaced for satS
// seconds. 100-byte inner packets measure the packet rate (the bar is a share of the reflector
// ceiling, ceiling.ts); 1400-byte ones the inner Gbit/s. Returned packets/s is counted over the
// run minus its first 0.5 s.

import type { Bg } from '../lib/bg';
import { measure } from '../lib/measure';
import type { BenchContext } from './context';

/** Inner packet sizes of the saturation runs, in the order they run. */
export const SATURATION_SIZES = [100, 1400];

export async function saturation(c: BenchContext, daemon: Bg, round: number, size: number, kind: 'gwlbtun' | 'baseline' = 'gwlbtun'): Promise<void> {
  c.res.runs.push(await measure(c.t, kind, `round ${round}`, daemon.pid, 1, true, { size, rate: 0, seconds: c.satS, ttlDec: 1, settleMs: 300 }));
}
