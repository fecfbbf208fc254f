// Bulk TCP (issue 13): the load most bytes through a GWLB appliance are. `gen send --tcp-run 32`:
// 16 flows, each sending runs of 32 consecutive full segments (a TCP window arriving) before the
// next flow's turn, valid checksums and IP IDs, every returned segment verified byte for byte.
// gwlbtun pinned to the appliance CPU with --offload off and --offload on, then the reflector on
// the same load, in each round; inner packets of 1500 and 8500 bytes (the inner MTUs of a
// standard and a jumbo network). Reported: inner Gbit/s, appliance CPU per returned packet and
// per GB.

import { spawnSync } from 'node:child_process';
import { startDaemon, startOriginal, startReflector, stopOriginal } from '../lib/appliance';
import type { SendOpts } from '../lib/gen';
import { stopBg } from '../lib/bg';
import { log } from '../lib/env';
import { rxGroOff, rxGroOn } from '../lib/rxgro';
import { measure } from '../lib/measure';
import type { BenchContext } from './context';

export const BULK_SIZES = [1500, 8500];
export const BULK_FLOWS = 16;
export const BULK_RUN = 32;
/** off; on with super-packets cut in TypeScript and sent through the raw socket
 * (GWLBTUN_NO_UDP_TUNNEL_GSO=1 GWLBTUN_NO_USO=1); on with them cut in TypeScript and sent with USO
 * (GWLBTUN_NO_UDP_TUNNEL_GSO=1); on (with UDP tunnel GSO where the kernel has it). */
export const BULK_MODES = ['off', 'on-cut', 'on-uso', 'on'] as const;
export type BulkMode = (typeof BULK_MODES)[number];

export function bulkLabel(mode: BulkMode | 'reflector' | 'original', round: number, rxGro = false): string {
  const g = rxGro ? ', rx GRO' : '';
  if (mode === 'reflector') return `bulk TCP${g}, round ${round}`;
  if (mode === 'original') return `bulk TCP${g}, C++ original, round ${round}`;
  return `bulk TCP${g}, --offload ${mode === 'on-cut' ? 'on (cut in TS)' : mode === 'on-uso' ? 'on (cut in TS, USO)' : mode}, round ${round}`;
}

/** The appliance's veth as a NIC without tunnel offloads: the kernel cuts UDP (tunnel) GSO packets
 * and finishes their checksums on the way out, charged to the appliance's CPU. */
function vethOffloads(c: BenchContext, on: boolean): void {
  const v = on ? 'on' : 'off';
  const r = spawnSync('ip', ['netns', 'exec', c.t.applianceNs, 'ethtool', '-K', c.t.applianceIf, 'tx', v, 'tx-udp-segmentation', v, 'tx-gso-list', v, 'tx-udp_tnl-segmentation', v, 'tx-udp_tnl-csum-segmentation', v], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ethtool -K ${c.t.applianceIf} failed (install ethtool): ${r.stderr ?? r.error}`);
}

function sizes(c: BenchContext): number[] {
  return c.bulkSizes ?? BULK_SIZES;
}

export async function bulkTcp(c: BenchContext, rounds: number): Promise<void> {
  vethOffloads(c, false);
  try {
    for (let r = 1; r <= rounds; r++) {
      await round(c, r, false, []);
      // --rx-gro: the same round again with receive-side GRO, right after (same machine state).
      if (c.rxGro !== undefined) {
        try {
          await round(c, r, true, rxGroOn(c.t, c.rxGro));
        } finally {
          rxGroOff(c.t);
        }
      }
      log(`bulk TCP round ${r} done`);
    }
  } finally {
    vethOffloads(c, true);
  }
}

/** One round of every mode; `gro`: an --rx-gro round, `charged`: threads whose CPU is the appliance's. */
async function round(c: BenchContext, r: number, gro: boolean, charged: number[]): Promise<void> {
  const o = (size: number, ttlDec: number): SendOpts => ({ size, rate: 0, seconds: c.satS, ttlDec, settleMs: 300, flows: BULK_FLOWS, tcpRun: BULK_RUN, udpCsum: gro });
  for (const mode of BULK_MODES) {
    if (c.bulkModes !== undefined && !c.bulkModes.includes(mode)) continue;
    // The daemon inherits this process's environment (bench/lib/bg.ts).
    if (mode === 'on-cut' || mode === 'on-uso') process.env.GWLBTUN_NO_UDP_TUNNEL_GSO = '1';
    if (mode === 'on-cut') process.env.GWLBTUN_NO_USO = '1';
    const bg = await startDaemon(c.t, 1, true, ['--offload', mode === 'off' ? 'off' : 'on']).finally(() => {
      delete process.env.GWLBTUN_NO_UDP_TUNNEL_GSO;
      delete process.env.GWLBTUN_NO_USO;
    });
    try {
      for (const size of sizes(c)) c.res.runs.push(await measure(c.t, 'gwlbtun', bulkLabel(mode, r, gro), bg.pid, 1, true, o(size, 1), charged));
    } finally {
      await stopBg(bg);
    }
  }
  if (c.original !== undefined && (c.bulkModes === undefined || c.bulkModes.includes('original'))) {
    const orig = await startOriginal(c.t, c.original);
    try {
      for (const size of sizes(c)) c.res.runs.push(await measure(c.t, 'original', bulkLabel('original', r, gro), orig.pid, 1, true, o(size, 1), charged));
    } finally {
      await stopOriginal(orig);
    }
  }
  if (c.bulkModes === undefined || c.bulkModes.includes('reflector')) {
    const refl = await startReflector(c.t, 120, gro);
    try {
      for (const size of sizes(c)) c.res.runs.push(await measure(c.t, 'reflector', bulkLabel('reflector', r, gro), refl.pid, 1, true, o(size, 0), charged));
    } finally {
      await stopBg(refl);
      // The reflector's summary: with GRO, "reads" below "received" says trains were merged.
      if (gro) log(`reflector: ${refl.out().trim().split('\n').pop() ?? ''}`);
    }
  }
}
