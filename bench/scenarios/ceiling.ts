// The reflector ceiling: `gen reflect` pinned to the appliance CPU (recvmmsg, an outer header in
// front of each payload, raw sendmmsg back; no TUN, no forwarding, no flow lookup), unpaced at
// the saturation sizes. It runs after gwlbtun in each round, in the same namespace: the one-arm
// hook's `ip rule`s leave every later route lookup there on the policy-rule path (the kernel
// never clears that flag), so both are measured under the same routing configuration.

import { stopBg } from '../lib/bg';
import { startReflector } from '../lib/appliance';
import { measure } from '../lib/measure';
import type { BenchContext } from './context';
import { SATURATION_SIZES } from './saturation';

export async function ceiling(c: BenchContext, round: number): Promise<void> {
  const refl = await startReflector(c.t, 120);
  try {
    for (const size of SATURATION_SIZES) {
      c.res.runs.push(await measure(c.t, 'reflector', `round ${round}`, refl.pid, 1, true, { size, rate: 0, seconds: c.satS, ttlDec: 0, settleMs: 300 }));
    }
  } finally {
    await stopBg(refl);
  }
}
