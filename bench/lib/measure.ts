// One measured run: the generator's result plus what the appliance process and the machine spent
// on it (CPU time, receive-buffer errors, gwo- tx drops, other load). Every run first waits for
// the machine to be quiet (bounded), so other jobs on a shared machine land between runs.

import type { Topology } from '../../src/sim/topology';
import type { Run } from '../results';
import { gwoName } from './appliance';
import { CLK_TCK, log } from './env';
import { badCount, genSend, type SendOpts } from './gen';
import { cpuTotals, ksoftirqdCpu, linkTxDropped, procCpu, rcvbufErrors, waitQuiet } from './system';

/** `alsoCharged`: more threads whose CPU is the appliance's (the veth's NAPI thread with --rx-gro). */
export async function measure(t: Topology, kind: Run['kind'], label: string, pid: number, workers: number, pinned: boolean, o: SendOpts, alsoCharged: number[] = []): Promise<Run> {
  const idleBefore = await waitQuiet();
  const charged = (): number => alsoCharged.reduce((s, p) => s + procCpu(p), procCpu(pid));
  const c0 = charged();
  const r0 = rcvbufErrors(pid);
  const d0 = kind !== 'reflector' ? linkTxDropped(t.applianceNs, gwoName()) : 0;
  const m0 = cpuTotals();
  const k0 = ksoftirqdCpu();
  const gen = await genSend(t, o);
  const m1 = cpuTotals();
  const k1 = ksoftirqdCpu();
  const c1 = charged();
  const applCpuS = c1 - c0;
  const run: Run = {
    kind,
    label,
    workers,
    pinned,
    size: o.size,
    rate: o.rate,
    spin: o.spin === true,
    gen,
    applCpuS,
    usPerPacket: gen.verified > 0 ? (applCpuS * 1e6) / gen.verified : NaN,
    rcvbufErrors: rcvbufErrors(pid) - r0,
    gwoTxDropped: kind !== 'reflector' ? linkTxDropped(t.applianceNs, gwoName()) - d0 : 0,
    idleBefore,
    otherCpuS: Math.max(0, (m1.busy - m0.busy) / CLK_TCK - applCpuS - gen.cpuSeconds - (k1 - k0)),
    bad: badCount(gen),
  };
  log(`${label}: ${kind} ${o.size} B ${o.rate === 0 ? 'unpaced' : `${o.rate} pps${o.spin === true ? ' (generator spinning)' : ''}`}: sent ${Math.round(gen.sentPps)} pps, ` +
    `returned ${Math.round(gen.returnedPps)} pps (${gen.innerGbps.toFixed(2)} Gbit/s), lost ${gen.lost}/${gen.sent}, ` +
    `${run.usPerPacket.toFixed(2)} us/pkt, rcvbuf errors ${run.rcvbufErrors}, bad ${run.bad}, other load ${run.otherCpuS.toFixed(2)} CPU-s`);
  return run;
}
