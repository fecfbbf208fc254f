// bench/gen.c, the load: compiled once per run, then one `gen send` per measurement inside the
// GWLB namespace, pinned to GEN_CPU. A run is bounded by its packet count and its seconds (and
// killed 30 s after that); its last line is a JSON summary (GenResult).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Topology } from '../../src/sim/topology';
import type { GenResult } from '../results';
import { startBg } from './bg';
import { ENI, FLOWS, GEN_BIN, GEN_CPU, GEN_SRC } from './env';

export function buildGen(): void {
  fs.mkdirSync(path.dirname(GEN_BIN), { recursive: true });
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-o', GEN_BIN, GEN_SRC], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cc} ${GEN_SRC} failed:\n${r.stderr}${r.error ?? ''}`);
}

export interface SendOpts {
  size: number;
  rate: number; // 0 = unpaced
  seconds: number;
  ttlDec: number;
  flows?: number;
  count?: number;
  settleMs?: number;
  warmupMs?: number;
  spin?: boolean;
  /** Bulk TCP: runs of this many consecutive segments per flow (gen.c --tcp-run); 0/undefined: UDP. */
  tcpRun?: number;
  /** Bulk TCP: outer UDP checksums set (gen.c --udp-csum), which the kernel's UDP GRO requires. */
  udpCsum?: boolean;
}

export async function genSend(t: Topology, o: SendOpts): Promise<GenResult> {
  const flows = o.flows ?? FLOWS;
  const count = o.count ?? Math.ceil((o.rate > 0 ? o.rate : 2_000_000) * o.seconds);
  const args = ['send', '--eni', ENI, '--src', t.gwlbIp, '--dst', t.applianceIp, '--cpus', GEN_CPU,
    '--flows', String(flows), '--size', String(o.size), '--rate', String(o.rate), '--count', String(count),
    '--seconds', String(o.seconds), '--ttl-dec', String(o.ttlDec), '--settle-ms', String(o.settleMs ?? 500),
    '--warmup-ms', String(o.warmupMs ?? 500), '--spin', o.spin === true ? '1' : '0', '--tcp-run', String(o.tcpRun ?? 0)];
  if (o.udpCsum === true) args.push('--udp-csum', '1');
  const b = startBg(t.gwlbNs, GEN_BIN, args);
  const timer = setTimeout(() => b.proc.kill('SIGKILL'), (o.seconds + 30) * 1000);
  const code = await b.finished();
  clearTimeout(timer);
  const line = b.out().split('\n').find((l) => l.startsWith('{"mode":"send"'));
  if (code !== 0 || line === undefined) throw new Error(`generator failed (exit ${code}):\n${b.out()}`);
  return JSON.parse(line) as GenResult;
}

export function badCount(r: GenResult): number {
  let n = 0;
  for (const [k, v] of Object.entries(r.counts)) if (k !== 'ok' && k !== 'reordered') n += v;
  return n;
}
