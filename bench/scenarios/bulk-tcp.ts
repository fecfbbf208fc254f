// Bulk TCP (issue 13): the load most bytes through a GWLB appliance are. `gen send --tcp-run 32`:
// 16 flows, each sending runs of 32 consecutive full segments (a TCP window arriving) before the
// next flow's turn, valid checksums and IP IDs, every returned segment verified byte for byte.
// gwlbtun pinned to the appliance CPU with --offload off and --offload on, then the reflector on
// the same load, in each round; inner packets of 1500 and 8500 bytes (the inner MTUs of a
// standard and a jumbo network). Reported: inner Gbit/s, appliance CPU per returned packet and
// per GB.

import { startDaemon, startReflector } from '../lib/appliance';
import { stopBg } from '../lib/bg';
import { log } from '../lib/env';
import { measure } from '../lib/measure';
import type { BenchContext } from './context';

export const BULK_SIZES = [1500, 8500];
export const BULK_FLOWS = 16;
export const BULK_RUN = 32;
export const BULK_MODES = ['off', 'on'] as const;

export function bulkLabel(mode: 'off' | 'on' | 'reflector', round: number): string {
  return mode === 'reflector' ? `bulk TCP, round ${round}` : `bulk TCP, --offload ${mode}, round ${round}`;
}

export async function bulkTcp(c: BenchContext, rounds: number): Promise<void> {
  const o = (size: number, ttlDec: number) => ({ size, rate: 0, seconds: c.satS, ttlDec, settleMs: 300, flows: BULK_FLOWS, tcpRun: BULK_RUN });
  for (let r = 1; r <= rounds; r++) {
    for (const mode of BULK_MODES) {
      const bg = await startDaemon(c.t, 1, true, ['--offload', mode]);
      try {
        for (const size of BULK_SIZES) c.res.runs.push(await measure(c.t, 'gwlbtun', bulkLabel(mode, r), bg.pid, 1, true, o(size, 1)));
      } finally {
        await stopBg(bg);
      }
    }
    const refl = await startReflector(c.t, 120);
    try {
      for (const size of BULK_SIZES) c.res.runs.push(await measure(c.t, 'reflector', bulkLabel('reflector', r), refl.pid, 1, true, o(size, 0)));
    } finally {
      await stopBg(refl);
    }
    log(`bulk TCP round ${r} done`);
  }
}
