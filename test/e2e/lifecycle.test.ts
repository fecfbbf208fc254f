// Endpoint lifecycle against the real daemon: packets held while a slow CREATE hook runs (no
// first-packet loss, other endpoints unaffected), -t idle destruction and re-creation, traffic
// from GWLB alone keeping an endpoint alive, hook timeout, hooks run without a shell.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eniToBase60 } from '../../src/wire/eni';
import type { Topology } from '../../src/sim/topology';
import {
  hookCalls,
  hookEvents,
  httpGetInNs,
  links,
  metrics,
  RECORD_HOOK,
  runEmulator,
  sleep,
  startDaemon,
  stopDaemon,
  useEnv,
  waitFor,
} from './lib';

const PORT = 8082;
const A = '00000000000000a0a'; // slow CREATE hook
const B = '00000000000000b0b';
const nameOf = (hex: string): string => eniToBase60(BigInt('0x' + hex));
const C = nameOf('c0c');
const hasLink = (t: Topology, name: string): boolean => links(t.applianceNs).some((l) => l.ifname === name);

describe('lifecycle: slow CREATE hook, -t idle timeout, re-creation', () => {
  const env = useEnv('lc', {
    args: ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-t', '3', '-p', String(PORT), '-j'],
    env: { GWLBTUN_TEST_HOOK_SLEEP: '2', GWLBTUN_TEST_HOOK_SLEEP_ENI: A },
  });

  let emulatorDoneMs = 0;

  test('no first-packet loss while a 2 s CREATE hook runs; another endpoint flows meanwhile', async () => {
    const started = Date.now();
    const run = runEmulator(env.t, ['--endpoints', `${A},${B}`, '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2', '--rate', '400', '--packets', '60', '--settle-ms', '4000', '--progress-ms', '0']);
    // About 1 s in: B's CREATE hook is done and its packets come back, A's hook is still sleeping.
    const mid = await waitFor('B flowing while A is being created', () => {
      if (Date.now() - started < 800) return undefined;
      const body = JSON.parse(httpGetInNs(env.t.applianceNs, PORT, '/').body) as { endpoints: { eni: string; state: string; packetsToGwlb: number }[] };
      const b = body.endpoints.find((e) => e.eni === B);
      return b !== undefined && b.packetsToGwlb > 0 ? body : undefined;
    }, 3000, 50);
    const a = mid.endpoints.find((e) => e.eni === A);
    assert.ok(a !== undefined && a.state === 'creating' && a.packetsToGwlb === 0, `A still being created: ${JSON.stringify(a)}`);
    assert.ok(Date.now() - started < 2000, 'B flowed before A could have been created');
    const r = await run;
    emulatorDoneMs = Date.now();
    for (const ep of r.endpoints) {
      assert.equal(ep.verified, ep.sent, `${ep.eni}: ${ep.verified}/${ep.sent} verified, bad ${JSON.stringify(ep.bad)}`);
    }
    const m = metrics(env.t, PORT);
    assert.ok((m.get('gwlbtun_hold_packets_total') ?? 0) > 0, 'packets were held');
    assert.equal(m.get('gwlbtun_drops_total{reason="hold_timeout"}'), 0);
    assert.equal(m.get('gwlbtun_drops_total{reason="hold_full"}'), 0);
    const ev = hookEvents(env.hookLog);
    const created = ev.indexOf(`done CREATE gwi-${nameOf(A)}`);
    assert.ok(created > ev.indexOf(`CREATE gwi-${nameOf(A)} gwo-${nameOf(A)} ${A}`), ev.join('\n'));
  });

  test('-t 3: an idle endpoint is destroyed within 4 s of its last packet, hook then interfaces', async () => {
    assert.ok(emulatorDoneMs > 0, 'previous test ran');
    for (const hex of [A, B]) {
      const n = nameOf(hex);
      await waitFor(`gwi-${n} removed`, () => !hasLink(env.t, `gwi-${n}`) && !hasLink(env.t, `gwo-${n}`), 6000, 100);
    }
    const elapsed = Date.now() - emulatorDoneMs;
    assert.ok(elapsed <= 4000, `destroyed ${elapsed} ms after the last packet`);
    const ev = hookEvents(env.hookLog);
    for (const hex of [A, B]) {
      const n = nameOf(hex);
      const c = ev.indexOf(`done CREATE gwi-${n}`);
      const dd = ev.indexOf(`DESTROY gwi-${n} gwo-${n} ${hex}`);
      assert.ok(c >= 0 && dd > c, `DESTROY after CREATE finished for ${n}:\n${ev.join('\n')}`);
    }
    const m = metrics(env.t, PORT);
    assert.equal(m.get('gwlbtun_endpoints'), 0);
  });

  test('a destroyed endpoint that sees traffic again is re-created and works', async () => {
    const r = await runEmulator(env.t, ['--endpoints', `${B}`, '--families', '4', '--protos', 'udp,icmp', '--flows', '2', '--rate', '500', '--packets', '20']);
    assert.equal(r.totals.verified, r.totals.sent);
    assert.ok(hasLink(env.t, `gwi-${nameOf(B)}`));
    const creates = hookCalls(env.hookLog).filter((a) => a[0] === 'CREATE' && a[3] === B);
    assert.equal(creates.length, 2, 'created twice');
  });
});

describe('lifecycle: traffic from GWLB alone keeps an endpoint alive', () => {
  // NOROUTE: the hook sets up no routing, so nothing ever comes back from the appliance.
  const env = useEnv('lc2', { args: ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-t', '2'], env: { GWLBTUN_TEST_HOOK_NOROUTE: '1' } });

  test('inbound-only traffic for 5 s with -t 2: never destroyed while it flows, destroyed after', async () => {
    const run = runEmulator(env.t, ['--endpoints', 'c0c', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '40', '--packets', '200', '--duration', '5', '--settle-ms', '100', '--progress-ms', '0']);
    let seen = false;
    let done = false;
    void run.finally(() => (done = true));
    while (!done) {
      const up = hasLink(env.t, `gwi-${C}`);
      if (up) seen = true;
      else if (seen) assert.fail('endpoint destroyed while GWLB was still sending to it');
      await sleep(200);
    }
    const r = await run;
    assert.ok(r.totals.sent >= 150, `sent ${r.totals.sent}`);
    assert.equal(r.totals.verified, 0, 'nothing returns without routing');
    assert.ok(seen);
    assert.ok(!hookCalls(env.hookLog).some((a) => a[0] === 'DESTROY'), 'no DESTROY while traffic flowed');
    await waitFor('destroyed after traffic stopped', () => !hasLink(env.t, `gwi-${C}`), 4000);
    assert.ok(hookCalls(env.hookLog).some((a) => a[0] === 'DESTROY' && a[1] === `gwi-${C}`));
  });
});

describe('hooks: timeout, no shell', () => {
  const env = useEnv('hk');

  test('a hook that outlives --hook-timeout is killed and logged; the endpoint works', async () => {
    const hookLog = path.join(env.dir, 'timeout.log');
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '--hook-timeout', '1', '-p', String(PORT)], { GWLBTUN_TEST_HOOK_LOG: hookLog, GWLBTUN_TEST_HOOK_SLEEP: '30' });
    try {
      const r = await runEmulator(env.t, ['--endpoints', '7', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '50', '--packets', '5', '--settle-ms', '2500']);
      // The hook was killed before routing was set up: packets reached gwi- but could not come back.
      assert.equal(r.totals.verified, 0);
      const m = metrics(env.t, PORT);
      assert.equal(m.get('gwlbtun_hook_create_timeouts_total'), 1);
      assert.equal(m.get('gwlbtun_endpoint_packets_from_gwlb_total{eni="00000000000000007",interface="gwi-7"}'), r.totals.sent);
      assert.match(d.output(), /create hook timed out after 1 s and was killed/);
      assert.ok(!hookEvents(hookLog).includes('done CREATE gwi-7'), 'the hook did not finish');
    } finally {
      await stopDaemon(d);
    }
  });

  test('the hook is executed without a shell: metacharacters in its path are just a name', async () => {
    const hookLog = path.join(env.dir, 'noshell.log');
    // A shell would run the touch commands (in the daemon's working directory).
    const pwned = `gwlbtun-pwned-${process.pid}`;
    const weird = path.join(env.dir, `hook $(touch ${pwned}); touch ${pwned} #.sh`);
    fs.writeFileSync(weird, `#!/bin/sh\nexec ${RECORD_HOOK} "$@"\n`, { mode: 0o755 });
    const d = await startDaemon(env.t, ['-c', weird, '-r', weird], { GWLBTUN_TEST_HOOK_LOG: hookLog });
    try {
      const r = await runEmulator(env.t, ['--endpoints', '8', '--families', '4', '--protos', 'tcp', '--flows', '1', '--rate', '50', '--packets', '5']);
      assert.equal(r.totals.verified, r.totals.sent);
      assert.deepEqual(hookCalls(hookLog)[0], ['CREATE', 'gwi-8', 'gwo-8', '00000000000000008']);
    } finally {
      await stopDaemon(d);
    }
    assert.deepEqual(hookCalls(hookLog).map((a) => a[0]), ['CREATE', 'DESTROY']);
    assert.ok(!fs.existsSync(pwned) && !fs.existsSync(path.join(env.dir, pwned)), 'no shell interpreted the hook path');
  });
});
