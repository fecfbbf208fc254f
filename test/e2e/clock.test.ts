// Wall-clock steps (NTP, settimeofday) against the real daemon. The daemon is started with
// GWLBTUN_FAILPOINT_CLOCK_STEP (src/base/clock-failpoint.ts): at an instant of the machine's
// monotonic clock chosen here, Date.now() of every daemon thread jumps by an hour (and a thread
// started afterwards sees performance.timeOrigin off by the hour too). Every duration the daemon
// measures (endpoint idle time -t, hold time, flow idle time, heartbeats) must ignore it.
//
// Traffic is placed around the step so that code measuring durations with the wall clock fails
// deterministically: the endpoint is quiet when the step happens (forward step), packets are held
// and the endpoint is already up when it happens (backward step), the worker is restarted after it.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { endpointNames } from '../../src/wire/eni';
import {
  hookCalls,
  httpGetInNs,
  metrics,
  RECORD_HOOK,
  runEmulator,
  sleep,
  startDaemon,
  stopDaemon,
  useEnv,
  waitFor,
  type Daemon,
  type Env,
  type EpReport,
} from './lib';

const PORT = 8091;
const HOUR_S = 3600;

/** The machine's monotonic clock (CLOCK_MONOTONIC), ms: the same in every process. */
function hrMs(): number {
  const t = process.hrtime();
  return t[0] * 1000 + t[1] / 1e6;
}

async function sleepUntil(atMs: number): Promise<void> {
  const d = atMs - hrMs();
  if (d > 0) await sleep(d);
}

/** Start the daemon with a wall-clock step of stepS seconds a few seconds from now; returns the
 * daemon and the step's monotonic instant. The step must come at least `readyBeforeMs` after the
 * daemon is up (so its threads started before it); on a slow machine, try again with more time. */
async function startWithStep(env: Env, args: string[], stepS: number, extraEnv: Record<string, string>, readyBeforeMs: number): Promise<{ d: Daemon; at: number }> {
  for (const leadMs of [readyBeforeMs + 1500, readyBeforeMs + 10000]) {
    const at = Math.ceil(hrMs() + leadMs);
    const d = await startDaemon(env.t, args, {
      GWLBTUN_TEST_HOOK_LOG: env.hookLog,
      ...extraEnv,
      GWLBTUN_FAILPOINT_CLOCK_STEP: `${stepS > 0 ? '+' : ''}${stepS}@${at}`,
    });
    if (hrMs() <= at - readyBeforeMs) return { d, at };
    await stopDaemon(d);
    fs.rmSync(env.hookLog, { force: true });
  }
  throw new Error('the daemon took too long to start, twice');
}

const udpFlow = (eni: string, packets: number, rate: number): string[] => [
  '--endpoints', eni, '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', String(packets), '--rate', String(rate), '--settle-ms', '200',
];

const counter = (env: Env, name: string): number => metrics(env.t, PORT).get(name) ?? 0;

describe('wall-clock steps', () => {
  const env = useEnv('clk');

  test('forward step of an hour with -t 3: the endpoint stays up and its flows stay; -t still counts from the last packet', async () => {
    const { d, at } = await startWithStep(env, ['-t', '3', '--idle-other', '3', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(PORT), '-j'], HOUR_S, {}, 2000);
    try {
      // Traffic until a second before the step (half a second of it, started 1.5 s before: the
      // emulator takes a moment to start), quiet around the step (well under -t), traffic again.
      await sleepUntil(at - 1500);
      const r1 = await runEmulator(env.t, udpFlow('21', 10, 20));
      await sleepUntil(at + 300);
      assert.deepEqual(hookCalls(env.hookLog).map((a) => a[0]), ['CREATE'], 'not torn down at the step');
      const r2 = await runEmulator(env.t, udpFlow('21', 30, 20));
      const phase2End = hrMs();
      assert.equal(r1.totals.verified, r1.totals.sent);
      assert.equal(r2.totals.verified, r2.totals.sent);
      assert.deepEqual(hookCalls(env.hookLog).map((a) => a[0]), ['CREATE'], 'one endpoint, never torn down');
      assert.equal(counter(env, 'gwlbtun_flow_expiries_total'), 0, 'no flow expired');
      assert.equal(counter(env, 'gwlbtun_flows'), 1);
      assert.equal(httpGetInNs(env.t.applianceNs, PORT, '/').status, 200, 'healthy (heartbeats are not an hour old)');
      // Idle for 3 s after its last packet: destroyed then, not at once, not never.
      await waitFor('DESTROY after 3 s idle', () => hookCalls(env.hookLog).some((a) => a[0] === 'DESTROY'), 10000);
      assert.ok(hrMs() - phase2End > 1000, `destroyed ${Math.round(hrMs() - phase2End)} ms after the last packet`);
      assert.match(d.output(), /endpoint 00000000000000021: no traffic for 3 s; destroying/);
    } finally {
      await stopDaemon(d);
      fs.rmSync(env.hookLog, { force: true });
    }
  });

  test('backward step of an hour: held packets still time out, an idle endpoint is still destroyed (-t 3)', async () => {
    // ENI 22 is created at once; ENI 23's CREATE hook sleeps 6 s, so its packets wait in the hold
    // queue (2.5 s at most) across the step.
    const { d, at } = await startWithStep(env, ['-t', '3', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(PORT), '-j'], -HOUR_S, {
      GWLBTUN_TEST_HOOK_SLEEP: '6',
      GWLBTUN_TEST_HOOK_SLEEP_ENI: '00000000000000023',
    }, 2000);
    try {
      await sleepUntil(at - 1500);
      // 2 endpoints x 1 flow x 30 packets at 40 pps: 1.5 s, ending after the step.
      const r = await runEmulator(env.t, ['--endpoints', '22,23', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '30', '--rate', '40', '--settle-ms', '200']);
      const sentEnd = hrMs();
      const ep = (eni: bigint): EpReport => r.endpoints.find((e) => e.eni === endpointNames(eni).hex)!;
      assert.equal(ep(0x22n).verified, ep(0x22n).sent, 'ENI 22 carried');
      assert.equal(ep(0x23n).verified, 0, 'ENI 23 held');
      await waitFor('CREATE of ENI 23 done', () => fs.readFileSync(env.hookLog, 'utf8').includes(`done\tCREATE\t${endpointNames(0x23n).gwi}\n`), 15000);
      const m = metrics(env.t, PORT);
      assert.equal(m.get('gwlbtun_drops_total{reason="hold_timeout"}'), ep(0x23n).sent, 'every held packet of ENI 23 timed out after 2.5 s');
      // ENI 22: up before the step, idle since the end of the traffic: destroyed 3 s later.
      await waitFor('DESTROY of ENI 22', () => hookCalls(env.hookLog).some((a) => a[0] === 'DESTROY' && a[3] === '00000000000000022'), 10000);
      assert.ok(hrMs() - sentEnd > 1000, 'not at once');
    } finally {
      await stopDaemon(d);
      fs.rmSync(env.hookLog, { force: true });
    }
  });

  test('a worker restarted after a step agrees with the sweeper: live flows stay, idle flows expire on time', async () => {
    const { d, at } = await startWithStep(env, ['--idle-other', '2', '-c', RECORD_HOOK, '-p', String(PORT), '-j'], -HOUR_S, { GWLBTUN_FAILPOINT: 'worker-crash:0:1' }, 1000);
    try {
      await sleepUntil(at + 200);
      // The first datagram kills worker 0 (before anything is created); it comes back 1 s later.
      await runEmulator(env.t, udpFlow('24', 1, 10));
      await waitFor('worker restarted', () => counter(env, 'gwlbtun_worker_restarts_total{worker="0"}') === 1 && httpGetInNs(env.t.applianceNs, PORT, '/').status === 200, 10000);
      // 4 flows, each refreshed every 100 ms for 2 s: none may expire.
      const r = await runEmulator(env.t, ['--endpoints', '24', '--families', '4', '--protos', 'udp', '--flows', '4', '--packets', '20', '--rate', '40', '--settle-ms', '200']);
      const sentEnd = hrMs();
      assert.equal(r.totals.verified, r.totals.sent);
      assert.equal(counter(env, 'gwlbtun_flow_expiries_total'), 0, 'no live flow expired');
      assert.equal(counter(env, 'gwlbtun_flows'), 4);
      // Idle for 2 s: expired by the sweeper within about a second more.
      await waitFor('idle flows expired', () => counter(env, 'gwlbtun_flow_expiries_total') === 4, 10000);
      assert.ok(hrMs() - sentEnd > 500, 'not at once');
      assert.equal(counter(env, 'gwlbtun_flows'), 0);
    } finally {
      await stopDaemon(d);
    }
  });
});
