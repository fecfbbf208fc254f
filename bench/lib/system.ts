// What the benchmark reads from the machine: /proc (CPU time of the machine, of a process and of
// the ksoftirqd threads; memory of a process; UDP receive-buffer errors of a namespace), a link's
// tx drops, and the machine description at the top of docs/benchmarks.md. Reads only.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { CLK_TCK, sleep } from './env';

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
export function cpuTotals(): { busy: number; total: number; steal: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice
  const busy = f[0] + f[1] + f[2] + f[5] + f[6];
  return { busy, total: busy + f[3] + f[4] + f[7], steal: f[7] };
}

/** Wait (at most maxMs) until the machine is at least 90% idle over 300 ms: other people's jobs
 * on a shared machine would otherwise land in the middle of a measurement. Returns the idle
 * fraction seen last. */
export async function waitQuiet(maxMs = 2000): Promise<number> {
  const end = Date.now() + maxMs;
  let idle = 0;
  for (;;) {
    const a = cpuTotals();
    await sleep(300);
    const b = cpuTotals();
    idle = 1 - (b.busy - a.busy) / Math.max(1, b.total - a.total);
    if (idle >= 0.9 || Date.now() > end) return idle;
  }
}

/** PIDs of the ksoftirqd threads: softirq work deferred there is still the benchmark's. */
function ksoftirqdPids(): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').startsWith('ksoftirqd/')) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
let KSOFTIRQD: number[] = [];
/** Find the ksoftirqd threads once, before the first measurement. */
export function findKsoftirqd(): void {
  KSOFTIRQD = ksoftirqdPids();
}
export function ksoftirqdCpu(): number {
  let s = 0;
  for (const p of KSOFTIRQD) {
    try {
      s += procCpu(p);
    } catch {
      // ignore
    }
  }
  return s;
}

/** utime + stime of a process (all threads), seconds. */
export function procCpu(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields after the command: state is index 0, so utime (14) and stime (15) are 11 and 12
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Field of /proc/<pid>/status in kB (VmRSS, VmHWM). */
export function procStatusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]);
}

/** Udp RcvbufErrors as seen by the process's network namespace. */
export function rcvbufErrors(pid: number): number {
  const lines = fs.readFileSync(`/proc/${pid}/net/snmp`, 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0].trim().split(/\s+/);
  const vals = lines[1].trim().split(/\s+/);
  return Number(vals[names.indexOf('RcvbufErrors')]);
}

export function linkTxDropped(ns: string, ifname: string): number {
  const r = spawnSync('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8' });
  if (r.status !== 0) return NaN;
  const j = JSON.parse(r.stdout) as Array<{ stats64?: { tx: { dropped: number } } }>;
  return j[0]?.stats64?.tx.dropped ?? NaN;
}

export function machine(): Record<string, string | number> {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const mhz = /^cpu MHz\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '?';
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '';
  const uname = spawnSync('uname', ['-srvmo'], { encoding: 'utf8' }).stdout.trim();
  return {
    cpu: model,
    cpus: os.cpus().length,
    mhz,
    hypervisor: flags.split(' ').includes('hypervisor') ? 'yes (virtual machine)' : 'no',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    uname,
    node: process.version,
  };
}
