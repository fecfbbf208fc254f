// Real TCP through the appliance (issue 13's second bar): the lab (src/lab, docs/lab.md) with the
// one-arm hook: a client downloads 6 x 64 MiB over HTTP from the server, through the lab's GWLB
// (a TUN-based forwarder that puts every packet in Geneve as GWLB does) and the appliance, IPv4,
// 1500-byte MTU on the client and server networks. Real Linux TCP on both ends, so the segments
// arrive as a real sender's window does (and the lab GWLB, not the appliance, usually sets the
// pace). Measured: the appliance process's CPU time over the transfer, per GB of payload, for
// gwlbtun --offload off and on, and the C++ original when --original is given. The appliance's
// outer veth cuts and checksums in software (as in bulk-tcp.ts).

import { spawnSync } from 'node:child_process';
import { Lab } from '../../src/lab/lab';
import { LAB } from '../../src/lab/topology';
import { LAB_PORTS } from '../../src/lab/lab';
import { log } from '../lib/env';
import { procCpu } from '../lib/system';
import type { BenchContext } from './context';
import type { LabTcpRun } from '../results';

/** Transfers of 64 MiB (the lab client's largest), one after another. */
export const LAB_TCP_TRANSFERS = 6;
const TRANSFER = 64 << 20;
/** on-uso: --offload on with the USO send tier (GWLBTUN_NO_UDP_TUNNEL_GSO=1), as on kernels 6.2 to 6.16. */
export const LAB_TCP_MODES = ['off', 'on-uso', 'on', 'original'] as const;

function vethSoftware(ns: string): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'eth0', 'tx', 'off', 'tx-udp-segmentation', 'off', 'tx-gso-list', 'off', 'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ethtool -K eth0 in ${ns} failed (install ethtool): ${r.stderr ?? r.error}`);
}

export async function labTcp(c: BenchContext, rounds: number): Promise<void> {
  for (let r = 1; r <= rounds; r++) {
    for (const mode of LAB_TCP_MODES) {
      if (mode === 'original' && c.original === undefined) continue;
      const lab = new Lab({
        hook: 'one-arm',
        daemonArgs: mode === 'original' ? ['--udpthreads', '1', '--tunthreads', '1'] : ['--udpthreads', '1', '--offload', mode === 'off' ? 'off' : 'on'],
        daemonCmd: mode === 'original' ? [c.original!] : undefined,
        readyText: mode === 'original' ? 'started' : undefined,
      });
      // The daemon inherits this process's environment (src/lab/lab.ts).
      if (mode === 'on-uso') process.env.GWLBTUN_NO_UDP_TUNNEL_GSO = '1';
      try {
        await lab.start().finally(() => delete process.env.GWLBTUN_NO_UDP_TUNNEL_GSO);
        vethSoftware(lab.topo!.appliance);
        // The endpoint comes up with the first packets: a small transfer first.
        await lab.client([{ op: 'bulk', host: LAB.server4, port: LAB_PORTS.http, bytes: 1 << 20 }]);
        const cpu0 = procCpu(lab.daemonPid);
        const ops = Array.from({ length: LAB_TCP_TRANSFERS }, () => ({ op: 'bulk' as const, host: LAB.server4, port: LAB_PORTS.http, bytes: TRANSFER }));
        const res = await lab.client(ops, 180000);
        const cpuS = procCpu(lab.daemonPid) - cpu0;
        const ok = res.length === ops.length && res.every((x) => x.ok);
        const run: LabTcpRun = { mode, round: r, ok, bytes: res.reduce((a, x) => a + x.good, 0), ms: res.reduce((a, x) => a + x.ms, 0), applCpuS: cpuS };
        (c.res.labTcp ??= []).push(run);
        log(`real TCP through the lab, ${mode === 'original' ? 'C++ original' : `--offload ${mode}`}, round ${r}: ${run.ok ? '' : 'FAILED, '}${((run.bytes * 8) / (run.ms * 1e6)).toFixed(2)} Gbit/s, appliance ${((cpuS * 1e9) / Math.max(1, run.bytes)).toFixed(2)} CPU-s per GB`);
      } finally {
        await lab.stop();
      }
    }
  }
}
