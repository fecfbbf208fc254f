// --rx-gro MODE (issue 13, an experiment kept so that it can be repeated): the bulk TCP rounds
// with the kernel's UDP GRO on the appliance's receive side. The load then carries outer UDP
// checksums (gen.c --udp-csum; Linux merges no UDP datagram whose checksum is 0) and the reflector
// asks for merged trains (gen.c reflect --gro). gwlbtun does not ask for them (it was not built:
// docs/benchmarks.md, "What was tried"), so in these rounds it and the original show what the
// set-up alone costs them.
//
// A veth hands a packet to the peer's NAPI (where GRO runs) only if it cannot be a TSO packet, so
// the GWLB side's veth goes without TSO. Then one of:
//   threaded: the appliance veth's NAPI runs in its own kernel thread, as a NIC's receive work
//     would run on the appliance: that thread is pinned to the appliance's CPU and its CPU time
//     is charged to whichever appliance is measured (measure(), alsoCharged).
//   flush: NAPI runs in the sender's context as by default (the generator pays for the
//     appliance's receive stack, as in every other round), but GRO holds packets across polls
//     for gro_flush_timeout (50 us), so trains form from one sendmmsg batch.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Topology } from '../../src/sim/topology';
import { APPL_CPU, log } from './env';

export const RX_GRO_MODES = ['threaded', 'flush'] as const;
export type RxGroMode = (typeof RX_GRO_MODES)[number];
const FLUSH_TIMEOUT_NS = 50_000;

function inNs(ns: string, cmd: string, args: string[]): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr ?? r.error}`);
}

/** Kernel threads whose name starts with `napi/<dev>-` (the name is cut at 15 characters). */
function napiThreads(dev: string): number[] {
  const prefix = `napi/${dev}-`.slice(0, 15);
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(prefix)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Sets the mode up; returns the PIDs to charge to the appliance (the NAPI threads, or none). */
export function rxGroOn(t: Topology, mode: RxGroMode): number[] {
  const dev = t.applianceIf;
  inNs(t.gwlbNs, 'ethtool', ['-K', t.gwlbIf, 'tso', 'off']);
  inNs(t.applianceNs, 'ethtool', ['-K', dev, 'gro', 'on']);
  if (mode === 'flush') {
    inNs(t.applianceNs, 'sh', ['-c', `echo ${FLUSH_TIMEOUT_NS} > /sys/class/net/${dev}/gro_flush_timeout`]);
    log(`rx GRO: ${dev} gro on, gro_flush_timeout ${FLUSH_TIMEOUT_NS} ns`);
    return [];
  }
  inNs(t.applianceNs, 'sh', ['-c', `echo 1 > /sys/class/net/${dev}/threaded`]);
  const pids = napiThreads(dev);
  if (pids.length === 0) throw new Error(`no NAPI thread for ${dev} after threaded=1`);
  for (const p of pids) {
    const r = spawnSync('taskset', ['-p', '-c', APPL_CPU, String(p)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`taskset ${p} failed: ${r.stderr ?? r.error}`);
  }
  log(`rx GRO: ${dev} gro on, threaded NAPI (threads ${pids.join(', ')} pinned to CPU ${APPL_CPU})`);
  return pids;
}

export function rxGroOff(t: Topology): void {
  const dev = t.applianceIf;
  // Threaded mode first: with GRO off the veth has no NAPI context left to switch (EIO).
  inNs(t.applianceNs, 'sh', ['-c', `echo 0 > /sys/class/net/${dev}/threaded; echo 0 > /sys/class/net/${dev}/gro_flush_timeout`]);
  inNs(t.applianceNs, 'ethtool', ['-K', dev, 'gro', 'off']);
  inNs(t.gwlbNs, 'ethtool', ['-K', t.gwlbIf, 'tso', 'on']);
}
