// The endpoints file (--endpoints FILE, src/control/endpoints-file.ts) against the real daemon:
// - endpoints from the file exist, their CREATE hooks done (an endpoint's own hook in place of
//   -c), before gwlbtun says it started, and carry traffic at once (nothing held);
// - -t never takes them down; --endpoints-only refuses an unlisted ENI ID (endpoint_unlisted);
// - SIGHUP adds and removes endpoints while a kept one carries traffic with zero loss and no hook
//   run again;
// - a malformed file: exit 2 with one line naming line and field at start; on SIGHUP an error in
//   the log and the running configuration kept.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eniToBase60 } from '../../src/wire/eni';
import { BIN, hookCalls, hookEvents, httpGetInNs, links, metrics, RECORD_HOOK, runEmulator, sleep, startDaemon, stopDaemon, useEnv, waitFor } from './lib';

const PORT = 8093;
const A = '00000000000000a0a';
const B = '00000000000000b0b';
const C = '00000000000000c0c';
const D = '00000000000000d0d'; // never listed
const n60 = (hex: string): string => eniToBase60(BigInt('0x' + hex));

describe('endpoints file: created at start, kept, --endpoints-only, SIGHUP', () => {
  const env = useEnv('epf');
  let file = '';
  let ownLog = '';
  let d: Awaited<ReturnType<typeof startDaemon>> | undefined;
  const hasLink = (name: string): boolean => links(env.t.applianceNs).some((l) => l.ifname === name);
  const drop = (m: Map<string, number>, r: string): number => m.get(`gwlbtun_drops_total{reason="${r}"}`) ?? 0;

  test('listed endpoints exist with their hooks run before the start line, and carry traffic at once', async () => {
    file = path.join(env.dir, 'endpoints.conf');
    ownLog = path.join(env.dir, 'own.log');
    // B's own CREATE hook: records that it ran, then does what the common hook does.
    const own = path.join(env.dir, 'own-create.sh');
    fs.writeFileSync(own, `#!/bin/sh\necho "OWN $*" >> ${ownLog}\nexec ${RECORD_HOOK} "$@"\n`, { mode: 0o755 });
    fs.writeFileSync(file, `# test endpoints\nvpce-${A} alpha\n${B} bravo create=${own}   # its own hook\n`);
    d = await startDaemon(env.t, ['--endpoints', file, '--endpoints-only', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '-t', '2', '-p', String(PORT), '-j', '--max-endpoints', '3'], { GWLBTUN_TEST_HOOK_LOG: env.hookLog });
    env.d = d; // stopped by useEnv's after(), whatever happens
    // startDaemon returned on the start line: by then both hooks have finished.
    const ev = hookEvents(env.hookLog);
    for (const hex of [A, B]) assert.ok(ev.includes(`done CREATE gwi-${n60(hex)}`), ev.join('\n'));
    assert.ok(hasLink(`gwi-${n60(A)}`) && hasLink(`gwo-${n60(B)}`));
    assert.deepEqual(fs.readFileSync(ownLog, 'utf8').trim().split('\n'), [`OWN CREATE gwi-${n60(B)} gwo-${n60(B)} ${B}`]);
    assert.equal(hookCalls(env.hookLog).filter((a) => a[0] === 'CREATE').length, 2);
    assert.equal(httpGetInNs(env.t.applianceNs, PORT, '/').status, 200);
    const r = await runEmulator(env.t, ['--endpoints', `${A},${B}`, '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2', '--rate', '400', '--packets', '20']);
    for (const ep of r.endpoints) assert.equal(ep.verified, ep.sent, `${ep.eni}: ${ep.verified}/${ep.sent}`);
    const m = metrics(env.t, PORT);
    assert.equal(m.get('gwlbtun_hold_packets_total'), 0, 'nothing was held: the endpoints existed');
    // Names everywhere: the log, the -j body, /status.json, /status, Prometheus labels (the ENI label stays).
    assert.match(d.output(), new RegExp(`endpoint ${A} \\(alpha\\): created gwi-${n60(A)}`));
    type Named = { endpoints: { eni: string; name: string | null }[] };
    const names = (body: string): string[] => (JSON.parse(body) as Named).endpoints.map((e) => `${e.eni}=${e.name}`).sort();
    assert.deepEqual(names(httpGetInNs(env.t.applianceNs, PORT, '/').body), [`${A}=alpha`, `${B}=bravo`]);
    assert.deepEqual(names(httpGetInNs(env.t.applianceNs, PORT, '/status.json').body), [`${A}=alpha`, `${B}=bravo`]);
    assert.match(httpGetInNs(env.t.applianceNs, PORT, '/status').body, new RegExp(`vpce-${A} alpha <span`));
    assert.ok((m.get(`gwlbtun_endpoint_packets_from_gwlb_total{eni="${B}",interface="gwi-${n60(B)}",name="bravo"}`) ?? 0) > 0, 'name label');
  });

  test('-t 2 never destroys a listed endpoint; --endpoints-only refuses an unlisted one', async () => {
    assert.ok(d !== undefined);
    const r = await runEmulator(env.t, ['--endpoints', D, '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '10', '--settle-ms', '300']);
    assert.equal(r.totals.verified, 0);
    assert.ok(!hasLink(`gwi-${n60(D)}`), 'no interface for an unlisted ENI ID');
    const m = metrics(env.t, PORT);
    assert.equal(drop(m, 'endpoint_unlisted'), r.totals.sent, 'every packet of it counted');
    await sleep(3500); // well past -t 2 since the last packet of A and B
    assert.ok(hasLink(`gwi-${n60(A)}`) && hasLink(`gwi-${n60(B)}`), 'still there');
    assert.ok(!hookCalls(env.hookLog).some((a) => a[0] === 'DESTROY'), 'no DESTROY');
    assert.match(d.output(), /ENI 00000000000000d0d is not in the endpoints file \(--endpoints-only\)/);
  });

  test('SIGHUP: C added, A removed, B keeps carrying traffic with zero loss and no hook re-run', async () => {
    assert.ok(d !== undefined);
    const daemon = d;
    const run = runEmulator(env.t, ['--endpoints', B, '--families', '4', '--protos', 'udp,tcp', '--flows', '2', '--rate', '200', '--packets', '120', '--settle-ms', '1000', '--progress-ms', '0']);
    await sleep(700);
    fs.writeFileSync(file, `${B} bravo\nvpce-${C} charlie\n`);
    daemon.proc.kill('SIGHUP');
    await waitFor('reload logged', () => /endpoints file .* reloaded: 1 added, 1 removed, 1 kept/.test(daemon.output()), 10000);
    const r = await run;
    assert.equal(r.totals.verified, r.totals.sent, `B: ${r.totals.verified}/${r.totals.sent} verified, lost ${r.totals.lost}`);
    assert.ok(hasLink(`gwi-${n60(C)}`) && !hasLink(`gwi-${n60(A)}`));
    const calls = hookCalls(env.hookLog);
    assert.deepEqual(calls.filter((a) => a[3] === B).map((a) => a[0]), ['CREATE'], 'B untouched');
    assert.deepEqual(calls.filter((a) => a[3] === A).map((a) => a[0]), ['CREATE', 'DESTROY']);
    assert.deepEqual(calls.filter((a) => a[3] === C).map((a) => a[0]), ['CREATE']);
    // (D's first packet waited for its refusal in test 2: held counts from here.)
    const held = metrics(env.t, PORT).get('gwlbtun_hold_packets_total');
    const r2 = await runEmulator(env.t, ['--endpoints', C, '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '10']);
    assert.equal(r2.totals.verified, r2.totals.sent);
    assert.equal(metrics(env.t, PORT).get('gwlbtun_hold_packets_total'), held, 'C existed before its first packet');
  });

  test('a malformed file on SIGHUP: one error in the log, the running configuration stays', async () => {
    assert.ok(d !== undefined);
    const daemon = d;
    fs.writeFileSync(file, `${B} bravo\n${C} charlie netns\n`);
    daemon.proc.kill('SIGHUP');
    await waitFor('error logged', () => daemon.output().includes(`endpoints file not reloaded, the running configuration stays: ${file} line 2, field netns: has no value`), 5000);
    // More endpoints than --max-endpoints 3: refused the same way.
    fs.writeFileSync(file, `${B} bravo\n${C} charlie\ne0e echo\nf0f foxtrot\n`);
    daemon.proc.kill('SIGHUP');
    await waitFor('limit error logged', () => daemon.output().includes(`endpoints file not reloaded, the running configuration stays: ${file}: 4 endpoints listed, over --max-endpoints 3`), 5000);
    await sleep(300);
    assert.ok(hasLink(`gwi-${n60(B)}`) && hasLink(`gwi-${n60(C)}`));
    assert.ok(!hasLink(`gwi-${n60('e0e')}`), 'nothing of the refused file was applied');
    assert.equal(daemon.proc.exitCode, null, 'still running');
    const r = await runEmulator(env.t, ['--endpoints', `${B},${C}`, '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '10']);
    assert.equal(r.totals.verified, r.totals.sent);
    const rc = await stopDaemon(daemon);
    d = undefined;
    assert.equal(rc.code, 0, daemon.output());
    // Shutdown destroys listed endpoints like any other.
    assert.deepEqual(hookCalls(env.hookLog).filter((a) => a[0] === 'DESTROY').map((a) => a[3]).sort(), [A, B, C]);
  });

  test('without --endpoints, SIGHUP is logged and ignored (systemctl reload never stops the daemon)', async () => {
    const other = await startDaemon(env.t, ['-p', String(PORT + 1)]);
    try {
      other.proc.kill('SIGHUP');
      await waitFor('SIGHUP logged', () => other.output().includes('SIGHUP: nothing to reload (no --endpoints FILE)'), 5000);
      await sleep(200);
      assert.equal(other.proc.exitCode, null, 'still running');
      assert.equal(httpGetInNs(env.t.applianceNs, PORT + 1, '/').status, 200);
    } finally {
      await stopDaemon(other);
    }
  });

  test('a malformed file at start: exit 2, one line naming the line and the field', () => {
    const bad = path.join(env.dir, 'bad.conf');
    fs.writeFileSync(bad, `${A} alpha\n\n${B} alpha\n`);
    const r = spawnSync(process.execPath, [BIN, '--endpoints', bad], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `gwlbtun: --endpoints: ${bad} line 3, field name: 'alpha' is already used on line 1 (see gwlbtun -h)\n`);
  });
});
