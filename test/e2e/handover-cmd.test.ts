// `gwlbtun handover` (src/ops/handover-cmd.ts) and the packages' upgrade scriptlet
// (scripts/package.js, HANDOVER_ON_UPGRADE) against a real daemon. No systemd here: a stand-in
// `systemctl` on PATH (written by the test) answers is-active, records try-restart, and answers
// MainPID from the daemon's PID file, as systemd following MAINPID= would; the daemon and the
// command share a runtime directory in the test's temporary directory (RUNTIME_DIRECTORY).
// - the scriptlet hands over: the command exits 0, the PID changes (PID file and the process
//   table agree), traffic goes on before and after, no hook runs, every interface is kept;
// - a hand-over that fails (the new process dies before it is ready): the command exits 1 with
//   the reason, the scriptlet falls back to `systemctl try-restart`, the daemon is the same PID;
// - a new build that reads another hand-over version: exit 2, no try-restart, the old one stops.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { endpointNames } from '../../src/wire/eni';
import { BIN, hookEvents, RECORD_HOOK, ROOT, runEmulator, startDaemon, stopDaemon, useEnv, waitFor } from './lib';
import { gone, ifindexes, stopPid } from './handover-lib';

const PORT = 8195;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { HANDOVER_ON_UPGRADE } = require(path.join(ROOT, 'scripts', 'package.js')) as { HANDOVER_ON_UPGRADE: string };

/** The runtime directory, the stand-in systemctl, and the scriptlet (sh, set -e as in postinst)
 * with the packaged path replaced by this repository's bin/gwlbtun. */
function rig(dir: string, tag: string): { run: string; env: Record<string, string>; calls: () => string[]; scriptlet: () => { status: number | null; out: string }; pidFile: () => number } {
  const run = path.join(dir, `run-${tag}`);
  const stubs = path.join(dir, `stubs-${tag}`);
  fs.mkdirSync(run);
  fs.mkdirSync(stubs);
  const log = path.join(dir, `calls-${tag}.log`);
  fs.writeFileSync(path.join(stubs, 'systemctl'), [
    '#!/bin/sh',
    `echo "systemctl $*" >>${log}`,
    'case "$1" in',
    '  is-active) exit 0 ;;',
    `  show) cat ${path.join(run, 'gwlbtun.pid')} 2>/dev/null || echo 0; exit 0 ;;`,
    'esac',
    'exit 0',
    '',
  ].join('\n'), { mode: 0o755 });
  const env = { RUNTIME_DIRECTORY: run };
  const script = `set -e\n${HANDOVER_ON_UPGRADE.split('/opt/gwlbtun/bin/gwlbtun').join(`${process.execPath} ${BIN}`)}\nexit 0\n`;
  return {
    run,
    env,
    calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : []),
    scriptlet: () => {
      const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 90000, env: { ...process.env, ...env, PATH: `${stubs}:${process.env.PATH ?? ''}` } });
      return { status: r.status, out: `${r.stdout}${r.stderr}` };
    },
    pidFile: () => Number((fs.existsSync(path.join(run, 'gwlbtun.pid')) ? fs.readFileSync(path.join(run, 'gwlbtun.pid'), 'utf8') : '0').trim()),
  };
}

describe('gwlbtun handover and the upgrade scriptlet, against a real daemon', () => {
  const env = useEnv('hcmd');

  test('the scriptlet hands over: exit 0, a new PID that systemd would follow, traffic on, no hook, interfaces kept', async () => {
    const r = rig(env.dir, 'ok');
    const hooks = path.join(env.dir, 'ok-hooks.log');
    const d = await startDaemon(env.t, ['-p', String(PORT), '-c', RECORD_HOOK, '-r', RECORD_HOOK, '--udpthreads', '2'], { ...r.env, GWLBTUN_TEST_HOOK_LOG: hooks });
    let pid = d.pid;
    try {
      assert.equal(r.pidFile(), d.pid, 'the PID file names the daemon');
      const args = ['--endpoints', '71,72', '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2', '--rate', '500', '--packets', '10', '--settle-ms', '500'];
      const r1 = await runEmulator(env.t, args);
      assert.equal(r1.totals.verified, r1.totals.sent);
      const before = ifindexes(env.t);
      const s = r.scriptlet();
      assert.equal(s.status, 0, s.out);
      pid = r.pidFile();
      assert.notEqual(pid, d.pid, 'a new main PID');
      assert.match(s.out, new RegExp(`gwlbtun handover: PID ${pid} took over from PID ${d.pid} \\(\\d+ flow\\(s\\) passed\\); no hook ran`));
      assert.ok(gone(d.pid) && !gone(pid), 'the old one exited, the new one runs');
      assert.equal((await d.exited).code, 0);
      assert.ok(!r.calls().some((c) => c.includes('try-restart')), `no restart: ${r.calls().join(' | ')}`);
      assert.deepEqual(ifindexes(env.t), before, 'every interface kept');
      const r2 = await runEmulator(env.t, args);
      assert.equal(r2.totals.verified, r2.totals.sent, 'traffic after the hand-over');
      assert.deepEqual(hookEvents(hooks).filter((l) => !l.startsWith('done')).map((l) => l.split(' ')[0]), ['CREATE', 'CREATE'], 'no hook beyond the first CREATEs');
      // And the command alone, by --pid, once more.
      const c = spawnSync(process.execPath, [BIN, 'handover', '--pid', String(pid)], { encoding: 'utf8', timeout: 60000, env: { ...process.env, ...r.env } });
      assert.equal(c.status, 0, c.stdout + c.stderr);
      const third = r.pidFile();
      assert.ok(third !== pid && !gone(third) && gone(pid), c.stdout);
      pid = third;
    } finally {
      await stopDaemon(d, 15000);
      await stopPid(pid);
    }
  });

  test('a hand-over that fails: exit 1 with the reason, then try-restart; the daemon is the same process', async () => {
    const r = rig(env.dir, 'fail');
    const d = await startDaemon(env.t, ['-p', String(PORT)], { ...r.env, GWLBTUN_FAILPOINT: 'handover-exit' });
    try {
      const s = r.scriptlet();
      assert.equal(s.status, 0, s.out);
      assert.match(s.out, new RegExp(`PID ${d.pid} could not hand over to PID \\d+ \\(it exited before it was ready\\); it carries on`));
      assert.match(s.out, /no hand-over in place \(gwlbtun handover: exit 1\): restarting the service instead/);
      assert.deepEqual(r.calls().filter((c) => !c.startsWith('systemctl show')), ['systemctl is-active --quiet gwlbtun.service', 'systemctl try-restart gwlbtun.service']);
      assert.equal(d.proc.exitCode, null, 'still running');
      assert.equal(r.pidFile(), d.pid);
    } finally {
      const exit = await stopDaemon(d, 15000);
      assert.equal(exit.code, 0, d.output());
      assert.ok(!fs.existsSync(path.join(r.run, 'gwlbtun.pid')), 'the PID file removed at exit');
    }
  });

  test('a new build that reads another hand-over version: exit 2, no try-restart, the restart under way', async () => {
    const r = rig(env.dir, 'fb');
    const n = endpointNames(0x73n);
    const hooks = path.join(env.dir, 'fb-hooks.log');
    const d = await startDaemon(env.t, ['-p', String(PORT), '-c', RECORD_HOOK, '-r', RECORD_HOOK], { ...r.env, GWLBTUN_TEST_HOOK_LOG: hooks, GWLBTUN_FAILPOINT: 'handover-version:99' });
    let pid = 0;
    try {
      const args = ['--endpoints', '73', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '500', '--packets', '5', '--settle-ms', '500'];
      assert.equal((await runEmulator(env.t, args)).totals.lost, 0);
      const s = r.scriptlet();
      assert.equal(s.status, 0, s.out);
      assert.match(s.out, /falling back to a restart/);
      assert.match(s.out, /the new version restarts the service instead of taking over in place/);
      assert.ok(!r.calls().some((c) => c.includes('try-restart')), r.calls().join(' | '));
      assert.equal((await d.exited).code, 0, 'the old one shut down');
      await waitFor('the new process to start', () => (r.pidFile() !== 0 && r.pidFile() !== d.pid ? true : undefined), 15000, 50);
      pid = r.pidFile();
      assert.deepEqual(hookEvents(hooks).filter((l) => l.startsWith('DESTROY')), [`DESTROY ${n.gwi} ${n.gwo} ${n.hex}`], 'a restart: DESTROY ran');
    } finally {
      await stopDaemon(d, 15000);
      await stopPid(pid);
    }
  });
});
