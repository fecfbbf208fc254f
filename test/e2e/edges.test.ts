// Faults at the edges of the control plane, against the real daemon: a wedged worker during a
// teardown, signals during start-up, during a teardown and during a CREATE hook. Each ends with
// every descriptor accounted for, DESTROY run exactly once per endpoint, and exit 0.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { nsSpawnArgs } from '../../src/sim/topology';
import { endpointNames } from '../../src/wire/eni';
import { BIN, hookEvents, metrics, RECORD_HOOK, runEmulator, sleep, startDaemon, stopDaemon, useEnv, waitFor } from './lib';

const PORT = 8086;
const N21 = endpointNames(0x21n);
const N23 = endpointNames(0x23n);

describe('edges: teardown and shutdown races', () => {
  const env = useEnv('edg');
  const hookEnv = (name: string, extra: Record<string, string> = {}): Record<string, string> => ({ GWLBTUN_TEST_HOOK_LOG: path.join(env.dir, name), ...extra });
  const emu = (eni: string, extra: string[] = []) =>
    runEmulator(env.t, ['--endpoints', eni, '--families', '4', '--protos', 'udp', '--flows', '40', '--packets', '10', '--rate', '1000', '--settle-ms', '800', ...extra]);

  test('a wedged worker during a teardown is terminated, its descriptors closed, and restarted: no share of flows black-holed', async () => {
    const log = path.join(env.dir, 'wedge.log');
    const d = await startDaemon(env.t, ['--udpthreads', '2', '-t', '2', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(PORT), '-j'], hookEnv('wedge.log', { GWLBTUN_FAILPOINT: 'worker-wedge:1:100' }));
    try {
      await emu('21'); // worker 1 stops turning its loop at its 100th packet
      // Idle after 2 s: the teardown waits for both workers; worker 1 never answers, so after
      // 5 s it is terminated (not trusted to have let go of the queues) and restarted.
      await waitFor('DESTROY ran', () => hookEvents(log).includes(`done DESTROY ${N21.gwi}`), 20000, 200);
      await waitFor('worker 1 restarted', () => metrics(env.t, PORT).get('gwlbtun_worker_restarts_total{worker="1"}') === 1, 10000);
      assert.match(d.output(), /worker 1 did not let go of endpoint 00000000000000021/);
      // Its UDP socket was closed by the main thread: no share of GWLB's flows goes unread.
      await waitFor('healthy again', () => metrics(env.t, PORT).get('gwlbtun_up') === 1, 10000).catch(() => undefined);
      const r = await emu('21', ['--flow-offset', '100']);
      assert.equal(r.totals.verified, r.totals.sent, `after the restart every packet comes back (${r.totals.verified} of ${r.totals.sent})`);
      assert.deepEqual(hookEvents(log).filter((l) => l.startsWith('DESTROY')), [`DESTROY ${N21.gwi} ${N21.gwo} ${N21.hex}`], 'DESTROY ran once');
    } finally {
      await stopDaemon(d, 15000);
    }
  });

  test('SIGTERM while an idle teardown runs its DESTROY hook: DESTROY runs once, exit 0', async () => {
    const log = path.join(env.dir, 'idle.log');
    const d = await startDaemon(env.t, ['-t', '1', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(PORT)], hookEnv('idle.log', { GWLBTUN_TEST_HOOK_DESTROY_SLEEP: '2' }));
    await emu('22', ['--packets', '2']);
    await waitFor('idle DESTROY started', () => hookEvents(log).some((l) => l.startsWith('DESTROY')), 10000, 50);
    const r = await stopDaemon(d, 15000);
    assert.equal(r.code, 0, d.output());
    assert.equal(hookEvents(log).filter((l) => l.startsWith('DESTROY')).length, 1, hookEvents(log).join('\n'));
    assert.match(d.output(), /stopped/);
  });

  test('SIGTERM while a CREATE hook runs: CREATE finishes, then DESTROY runs once, exit 0', async () => {
    const log = path.join(env.dir, 'create.log');
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(PORT)], hookEnv('create.log', { GWLBTUN_TEST_HOOK_SLEEP: '2' }));
    const traffic = emu('23', ['--packets', '2', '--settle-ms', '100']).catch(() => undefined);
    await waitFor('CREATE started', () => hookEvents(log).some((l) => l.startsWith('CREATE')), 10000, 50);
    const r = await stopDaemon(d, 20000);
    await traffic;
    assert.equal(r.code, 0, d.output());
    assert.deepEqual(hookEvents(log), [`CREATE ${N23.gwi} ${N23.gwo} ${N23.hex}`, `done CREATE ${N23.gwi}`, `DESTROY ${N23.gwi} ${N23.gwo} ${N23.hex}`, `done DESTROY ${N23.gwi}`]);
  });

  test('SIGTERM during start-up: a clean shutdown, exit 0', async () => {
    const a = nsSpawnArgs(env.t.applianceNs, process.execPath, [BIN, '-p', String(PORT)]);
    const p = spawn(a.file, a.args, { env: { ...process.env, GWLBTUN_FAILPOINT: 'slow-start:1500' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    const timer = setTimeout(() => p.kill('SIGKILL'), 15000);
    try {
      // The first log line comes before the workers start; the workers take 1.5 s to come up.
      await waitFor('first log line', () => out.includes('--gwlb-cidr'), 10000, 20);
      await sleep(200);
      p.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, out);
      assert.doesNotMatch(out, /gwlbtun started/);
      assert.match(out, /stopped/);
    } finally {
      clearTimeout(timer);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
  });
});
