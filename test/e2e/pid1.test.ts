// gwlbtun as PID 1 of its own PID namespace, as in a container without an init: the background
// processes its hooks leave behind are re-parented to it, and when they end it must collect them
// (src/control/reaper.ts), or a zombie is left for every endpoint. The daemon runs behind
// `unshare --pid --fork --mount-proc` inside the test's appliance network namespace; its CREATE
// hook leaves a short-lived background child each time. After several endpoints were created, no
// process of that PID namespace may be a zombie, and every hook must have finished normally (the
// reaper never takes the exit status of a hook, which Node's child_process waits for itself).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hookCalls, runEmulator, sleep, startDaemon, useEnv, waitFor, type Daemon } from './lib';

const ENIS = ['1a1', '2b2', '3c3', '4d4', '5e5', '6f6'];

/** "PID (COMM) STATE PPID ..." of /proc/PID/stat: the state and the parent, or undefined once gone. */
function stat(pid: string): { state: string; ppid: number } | undefined {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return { state: f[0]!, ppid: Number(f[1]) };
  } catch {
    return undefined;
  }
}

/** The PIDs (as this test sees them) of the processes in PID namespace `ns` (a /proc/PID/ns/pid link). */
function inNamespace(ns: string): string[] {
  return fs.readdirSync('/proc').filter((p) => {
    if (!/^[0-9]+$/.test(p)) return false;
    try {
      return fs.readlinkSync(`/proc/${p}/ns/pid`) === ns;
    } catch {
      return false;
    }
  });
}

/** The daemon: unshare's only child (unshare itself stays outside the new PID namespace). */
function daemonPid(unsharePid: number): number {
  const kids = fs.readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p) && stat(p)?.ppid === unsharePid);
  assert.equal(kids.length, 1, `unshare ${unsharePid} has one child`);
  return Number(kids[0]);
}

/** unshare does not pass SIGTERM on: stop the daemon by its own PID, unshare then exits too. */
async function stop(d: Daemon, pid: number): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  process.kill(pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([d.exited, new Promise<null>((res) => (timer = setTimeout(() => res(null), 8000)))]);
  clearTimeout(timer);
  if (r !== null) return;
  if (stat(String(pid)) !== undefined) process.kill(pid, 'SIGKILL'); // PID 1 of the namespace: takes the rest with it
  await d.exited;
}

describe('gwlbtun as PID 1 collects the orphans of its hooks', () => {
  const env = useEnv('pid1');

  test('CREATE hooks leave a background child each; after 6 endpoints no zombie remains in the PID namespace', async () => {
    const hook = path.join(env.dir, 'leave-child.sh');
    fs.writeFileSync(hook, '#!/bin/sh\nprintf "%s\\t%s\\t%s\\t%s\\t%s\\n" "$#" "$@" >> "$GWLBTUN_TEST_HOOK_LOG"\nsleep 1 &\nexit 0\n', { mode: 0o755 });
    const d = await startDaemon(env.t, ['-c', hook, '--logging', 'core=info'], { GWLBTUN_TEST_HOOK_LOG: env.hookLog }, 10000, undefined, [
      'unshare', '--pid', '--fork', '--mount-proc', '--kill-child',
    ]);
    const pid = daemonPid(d.pid);
    try {
      const ns = fs.readlinkSync(`/proc/${pid}/ns/pid`);
      assert.notEqual(ns, fs.readlinkSync('/proc/self/ns/pid'), 'the daemon has its own PID namespace');
      assert.match(d.output(), /running as PID 1: collecting orphaned processes/);
      // No routing in the hook: nothing comes back, the traffic only creates the endpoints.
      await runEmulator(env.t, ['--endpoints', ENIS.join(','), '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '60', '--packets', '6', '--settle-ms', '300', '--progress-ms', '0']);
      await waitFor('every CREATE hook ran', () => hookCalls(env.hookLog).filter((a) => a[0] === 'CREATE').length === ENIS.length, 10000);
      await waitFor('every CREATE hook finished', () => (d.output().match(/create hook done/g) ?? []).length === ENIS.length, 10000);
      // Each background child ends 1 s after its hook; the reaper runs every second.
      await sleep(2000);
      const zombies = (): string[] => inNamespace(ns).filter((p) => stat(p)?.state === 'Z');
      await waitFor(`no zombie in the daemon's PID namespace (left: ${zombies().join(' ')})`, () => zombies().length === 0, 2000);
      assert.equal(stat(String(pid))?.state !== undefined, true, 'the daemon still runs');
      assert.doesNotMatch(d.output(), /hook timed out|hook failed|hook could not run/, 'every hook finished normally');
      assert.match(d.output(), /processes it started are still running \(left alone\)/, 'the hooks did leave children behind');
    } finally {
      await stop(d, pid);
    }
  });
});
