// Helpers of the hand-over tests (test/e2e/handover*.test.ts): daemon generations that are not the
// test's children (each new process is the previous one's), found and stopped by PID.

import * as fs from 'node:fs';
import type { Topology } from '../../src/sim/topology';
import { nsRun, waitFor, type Daemon } from './lib';

/** Whether the process is gone (no such PID, or a zombie nobody reaped yet). */
export function gone(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

/** SIGTERM by PID to a daemon generation that is not our child; SIGKILL after 15 s. */
export async function stopPid(pid: number): Promise<void> {
  if (pid <= 0 || gone(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(`PID ${pid} to exit`, () => gone(pid), 15000, 50);
  } catch {
    if (!gone(pid)) process.kill(pid, 'SIGKILL');
  }
}

/** The ifindex of every interface in the appliance namespace whose name matches `re` (by default
 * the gwi-/gwo- interfaces). */
export function ifindexes(t: Topology, re = /^gw[io]-/): Map<string, number> {
  const r = nsRun(t.applianceNs, 'ip', ['-j', 'link', 'show']);
  const m = new Map<string, number>();
  for (const l of JSON.parse(r.stdout) as { ifname: string; ifindex: number }[]) if (re.test(l.ifname)) m.set(l.ifname, l.ifindex);
  return m;
}

/** After SIGUSR2 to `pid`: the PID that took over from it (its log line), and its pause. */
export async function takeover(d: Daemon, pid: number): Promise<{ pid: number; pauseMs: number }> {
  const re = new RegExp(`hand-over: PID (\\d+) took over from PID ${pid}: .* traffic paused (\\d+) ms`);
  const m = await waitFor(`a process to take over from PID ${pid}`, () => re.exec(d.output()) ?? undefined, 15000, 50);
  return { pid: Number(m[1]), pauseMs: Number(m[2]) };
}
