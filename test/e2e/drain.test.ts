// Draining on SIGTERM (--drain, docs/operations.md "Draining"), against the real daemon: the
// health check answers 503 from the signal on while every packet GWLB sends keeps coming back,
// the DESTROY hook runs once when the drain is over, and the exit code is 0. A second signal
// ends the drain early (same clean shutdown); a third exits at once.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { endpointNames } from '../../src/wire/eni';
import { hookEvents, httpGetInNs, RECORD_HOOK, runEmulator, sleep, startDaemon, stopDaemon, useEnv, waitFor, type EmuReport } from './lib';

const PORT = 8087;
const DRAIN_S = 3;
const N31 = endpointNames(0x31n);
const N32 = endpointNames(0x32n);

interface Health {
  status: number;
  healthy?: boolean;
  draining?: boolean;
  endpoints?: { eni: string; state: string; packetsFromGwlb: number }[];
}

describe('drain: SIGTERM with --drain', () => {
  const env = useEnv('drn');

  function health(): Health {
    const r = httpGetInNs(env.t.applianceNs, PORT, '/');
    if (r.status === 0) return { status: 0 };
    return { status: r.status, ...(JSON.parse(r.body) as Omit<Health, 'status'>) };
  }

  test('traffic sent during the drain comes back, health is 503 throughout, DESTROY runs once after it, exit 0', async (t) => {
    const log = path.join(env.dir, 'drain.log');
    const d = await startDaemon(env.t, ['--drain', String(DRAIN_S), '-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: log });
    try {
      assert.equal(health().status, 200);
      // 8 flows at 400 packets a second for about 2.4 s: the signal goes after 240 packets (0.6 s),
      // so the emulator goes on sending for about 1.8 s of the 3 s drain (a second to spare).
      let emuEnd = 0;
      const emu: Promise<EmuReport> = runEmulator(env.t, [
        '--endpoints', '31', '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2',
        '--rate', '400', '--packets', '120', '--settle-ms', '500', '--duration', '20',
      ]).finally(() => (emuEnd = Date.now()));
      await waitFor('traffic flowing', () => (health().endpoints ?? []).some((e) => e.eni === N31.hex && e.state === 'ready' && e.packetsFromGwlb >= 240), 10000, 50);
      const t0 = Date.now();
      d.proc.kill('SIGTERM');
      // Health during the drain: 503 (draining, not healthy) from the first answer on, polled
      // until the emulator is done.
      const answers: Health[] = [];
      while (emuEnd === 0 && Date.now() - t0 < 10000) {
        answers.push(health());
        await sleep(100);
      }
      const r = await emu;
      const sentFor = emuEnd - t0;
      const destroyBefore = hookEvents(log).filter((l) => l.startsWith('DESTROY'));
      assert.ok(answers.length >= 3, `health polled ${answers.length} times during the drain`);
      for (const a of answers) {
        assert.equal(a.status, 503, 'health answers 503 while draining');
        assert.equal(a.draining, true);
        assert.equal(a.healthy, false);
      }
      assert.ok(sentFor >= 1200, `the emulator went on for ${sentFor} ms after SIGTERM`);
      assert.equal(r.totals.lost, 0, `nothing lost: ${JSON.stringify(r.totals)}`);
      assert.equal(r.totals.verified, r.totals.sent, 'every packet, also those sent during the drain, came back verified');
      assert.equal(r.totals.sent, 8 * 120);
      assert.deepEqual(destroyBefore, [], 'no DESTROY while draining');

      const exit = await d.exited;
      const total = Date.now() - t0;
      assert.equal(exit.code, 0, d.output());
      assert.ok(total >= (DRAIN_S - 0.5) * 1000, `exited ${total} ms after SIGTERM: after the drain`);
      assert.ok(total < (DRAIN_S + 5) * 1000, `exited ${total} ms after SIGTERM: within the drain plus 5 s`);
      assert.deepEqual(hookEvents(log).filter((l) => l.startsWith('DESTROY')), [`DESTROY ${N31.gwi} ${N31.gwo} ${N31.hex}`], 'DESTROY ran once');
      assert.ok(hookEvents(log).includes(`done DESTROY ${N31.gwi}`));
      assert.match(d.output(), /draining for 3 s/);
      assert.match(d.output(), /drain over: shutting down/);
      t.diagnostic(`sent ${r.totals.sent}, verified ${r.totals.verified}; emulator ran ${sentFor} ms after SIGTERM; ${answers.length} health answers, all 503; exit ${total} ms after SIGTERM`);
    } finally {
      await stopDaemon(d, 15000);
    }
  });

  test('a second signal ends the drain early (DESTROY once, exit 0); a third exits at once', async () => {
    const log = path.join(env.dir, 'early.log');
    const d = await startDaemon(env.t, ['--drain', '60', '-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: log });
    try {
      const r = await runEmulator(env.t, ['--endpoints', '32', '--families', '4', '--protos', 'udp', '--flows', '2', '--rate', '500', '--packets', '5', '--settle-ms', '500']);
      assert.equal(r.totals.verified, r.totals.sent);
      d.proc.kill('SIGTERM');
      await waitFor('503 while draining', () => {
        const h = health();
        return h.status === 503 && h.draining === true;
      }, 5000, 100);
      const t1 = Date.now();
      d.proc.kill('SIGTERM');
      const exit = await d.exited;
      const took = Date.now() - t1;
      assert.equal(exit.code, 0, d.output());
      assert.ok(took < 8000, `exited ${took} ms after the second signal, long before the 60 s drain`);
      assert.deepEqual(hookEvents(log).filter((l) => l.startsWith('DESTROY')), [`DESTROY ${N32.gwi} ${N32.gwo} ${N32.hex}`], 'DESTROY ran once');
      assert.match(d.output(), /again: ending the drain early/);
    } finally {
      await stopDaemon(d, 15000);
    }

    // Third signal: while the DESTROY hook (5 s) runs after the drain was ended, exit at once (1).
    const log3 = path.join(env.dir, 'third.log');
    const d3 = await startDaemon(env.t, ['--drain', '60', '-p', String(PORT), '-j', '-r', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: log3, GWLBTUN_TEST_HOOK_DESTROY_SLEEP: '5' });
    try {
      await runEmulator(env.t, ['--endpoints', '32', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '500', '--packets', '3', '--settle-ms', '300']);
      d3.proc.kill('SIGTERM');
      await waitFor('503 while draining', () => health().status === 503, 5000, 100);
      d3.proc.kill('SIGTERM');
      await waitFor('DESTROY started', () => hookEvents(log3).some((l) => l.startsWith('DESTROY')), 5000, 50);
      const t2 = Date.now();
      d3.proc.kill('SIGTERM');
      const exit = await d3.exited;
      assert.ok(Date.now() - t2 < 1500, 'the third signal exits at once');
      assert.equal(exit.code, 1);
    } finally {
      await stopDaemon(d3, 15000);
    }
  });
});
