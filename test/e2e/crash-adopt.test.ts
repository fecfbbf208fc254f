// Crash survival (docs/operations.md, "Crashes and restarts"; src/control/state.ts,
// src/control/endpoints.ts adoptLeftovers), against the real daemon:
// - SIGKILL during a steady bidirectional load of the emulator (three endpoints, UDP and TCP, IPv4
//   and IPv6, two workers) and one quiet flow (test/e2e/quiet.ts), then a start with the same
//   arguments: no CREATE hook the second time, every interface kept (same ifindex, never gone),
//   the quiet flow's returns back within 1 s of the new process being up, with the flow's own
//   Geneve header, and the loss bounded by the downtime (both printed); a SIGTERM at the end still
//   removes everything, with DESTROY hooks, and the state file;
// - --no-adopt: nothing persistent, the interfaces go with the killed process, no state file;
// - an exit at once (a second signal during the shutdown) is no crash: nothing is left to adopt;
// - a corrupt state file: one line, a start afresh (the leftover interfaces destroyed with their
//   DESTROY hook), and traffic works (CREATE again).
// Persistent devices outlive processes: every test deletes the ones it may leave, also on failure.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { endpointNames } from '../../src/wire/eni';
import type { Topology } from '../../src/sim/topology';
import { hookEvents, metrics, nsRun, RECORD_HOOK, runEmulator, sleep, startDaemon, stopDaemon, useEnv, waitFor, type Daemon, type EmuReport } from './lib';
import { drop } from './probe';
import { ifindexes } from './handover-lib';
import { captureAtGwlb, LOAD, QUIET, startQuietFlow } from './quiet';

const PORT = 8194;
const RATE = 800;

/** Delete every gwi-/gwo- device left in the appliance namespace (persistent ones outlive us). */
function deleteDevices(t: Topology): void {
  for (const name of ifindexes(t).keys()) nsRun(t.applianceNs, 'ip', ['link', 'del', name]);
}

function tunFlags(t: Topology, name: string): number {
  const r = nsRun(t.applianceNs, 'cat', [`/sys/class/net/${name}/tun_flags`]);
  return r.status === 0 ? parseInt(r.stdout.trim(), 16) : -1;
}

/** SIGKILL by PID; resolves once it has exited. */
async function kill(d: Daemon): Promise<number> {
  d.proc.kill('SIGKILL');
  await d.exited;
  return Date.now();
}

describe('crash survival (SIGKILL, then a start)', () => {
  const env = useEnv('cra');

  test('SIGKILL under load, a new start adopts: no hook, interfaces kept, the quiet flow back within 1 s, loss bounded by the downtime', async (t) => {
    const hooks = path.join(env.dir, 'hooks.log');
    const stateDir = path.join(env.dir, 'state');
    const file = path.join(stateDir, 'state');
    const args = ['-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '--udpthreads', '2', '--snapshot-interval', '1', '--state-dir', stateDir];
    const henv = { GWLBTUN_TEST_HOOK_LOG: hooks };
    let d = await startDaemon(env.t, args, henv);
    let server: Awaited<ReturnType<typeof startQuietFlow>> | null = null;
    let emu: Promise<EmuReport> | null = null;
    try {
      server = await startQuietFlow(env.t, PORT);
      // The load: 24 flows, 9,600 packets at 800 a second (12 s); the crash during it.
      emu = runEmulator(env.t, [
        '--endpoints', LOAD.map((n) => n.hex.replace(/^0+/, '')).join(','), '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2',
        '--rate', String(RATE), '--packets', '400', '--settle-ms', '2000', '--duration', '40',
      ], 90000);
      await waitFor('every endpoint up', () => {
        const m = ifindexes(env.t);
        return LOAD.every((n) => m.has(n.gwi) && m.has(n.gwo));
      }, 15000, 100);
      const before = ifindexes(env.t);
      assert.equal(before.size, 8, `four endpoints' interfaces: ${[...before.keys()].join(' ')}`);
      for (const n of before.keys()) assert.equal(tunFlags(env.t, n) & 0x800, 0x800, `${n} persistent`);
      // A snapshot written after every endpoint was ready (one a second).
      const t0 = Date.now();
      await waitFor('a snapshot with every endpoint', () => fs.existsSync(file) && fs.statSync(file).mtimeMs > t0 + 200, 5000, 50);
      const cost = /state file .*: (\d+) flow\(s\), (\d+) bytes, ([\d.]+) ms \(([\d.]+) ms CPU, writer thread\)/.exec(d.output());
      assert.ok(cost !== null, 'the first snapshot logged its cost');

      const killedAt = await kill(d);
      // While nothing runs: the interfaces are there.
      assert.deepEqual(ifindexes(env.t), before, 'the interfaces outlive the process');
      d = await startDaemon(env.t, args, henv);
      const upAt = Date.now();
      const downMs = upAt - killedAt;
      const m = /adopted (\d+) endpoint\(s\) and (\d+) flow\(s\) from (\S+) written ([\d.]+) s ago/.exec(d.output());
      assert.ok(m !== null, d.output());
      assert.equal(Number(m[1]), 4);
      assert.ok(Number(m[2]) >= 1, 'flows restored');
      // The quiet flow's return: found (no no_flow), sent to GWLB, within 1 s of the start.
      await server.reply();
      const got = await waitFor("the quiet flow's return", () => {
        const x = metrics(env.t, PORT);
        return server!.back(x) >= 1 ? x : undefined;
      }, 3000, 20);
      const quietMs = Date.now() - upAt;
      assert.equal(drop(got, 'no_flow'), 0, 'no return without its flow');
      assert.ok(quietMs <= 1000, `the quiet flow's return ${quietMs} ms after the start`);
      assert.deepEqual(ifindexes(env.t), before, 'every interface kept, with its ifindex');

      const r = await emu;
      const bound = Math.ceil((RATE * (downMs + 500)) / 1000);
      t.diagnostic(`downtime ${downMs} ms (SIGKILL to started); lost ${r.totals.lost} of ${r.totals.sent} (bound ${bound}: ${RATE}/s x (downtime + 0.5 s)); quiet flow back ${quietMs} ms after the start; adopted ${m[1]} endpoints, ${m[2]} flows, file ${m[4]} s old; snapshot of ${cost[1]} flows: ${cost[2]} bytes, ${cost[3]} ms, ${cost[4]} ms CPU`);
      assert.equal(r.totals.sent, 24 * 400);
      assert.ok(r.totals.lost <= bound, `loss ${r.totals.lost} bounded by the downtime (${bound})`);
      assert.equal(r.totals.verified + r.totals.lost, r.totals.sent, 'every return that came back verified with its flow\'s header');
      // No hook ran the second time: one CREATE per endpoint, no DESTROY.
      const ev = hookEvents(hooks).filter((l) => !l.startsWith('done'));
      assert.deepEqual(ev.filter((l) => l.startsWith('DESTROY')), [], 'no DESTROY');
      assert.deepEqual(ev.map((l) => l.split(' ')[2]).sort(), [QUIET, ...LOAD].map((n) => n.gwo).sort(), 'one CREATE per endpoint, all before the crash');

      // The quiet flow's return carries the header GWLB sent with its one packet.
      const cap = await captureAtGwlb(env.t);
      await server.reply();
      assert.equal((await cap.got).slice(0, server.header.length * 2), Buffer.from(server.header).toString('hex'), "the flow's own Geneve header");

      // A clean stop: DESTROY once per endpoint, the interfaces and the state file gone.
      assert.equal((await stopDaemon(d, 15000)).code, 0, d.output());
      const destroyed = hookEvents(hooks).filter((l) => l.startsWith('DESTROY')).map((l) => l.split(' ')[2]).sort();
      assert.deepEqual(destroyed, [QUIET, ...LOAD].map((n) => n.gwo).sort(), 'DESTROY once per endpoint');
      assert.equal(ifindexes(env.t).size, 0, 'no interface left');
      assert.ok(!fs.existsSync(file), 'no state file left');
    } finally {
      server?.stop();
      await stopDaemon(d, 15000);
      // The emulator holds GWLB's port until its load is over (12 s, bounded by its --duration):
      // the next test's emulator binds it too.
      await emu?.catch(() => undefined);
      deleteDevices(env.t);
    }
  });

  test('--no-adopt: nothing persistent, the interfaces go with a killed process, no state file', async () => {
    const stateDir = path.join(env.dir, 'state-no');
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '--no-adopt', '--snapshot-interval', '1', '--state-dir', stateDir], { GWLBTUN_TEST_HOOK_LOG: path.join(env.dir, 'no-adopt.log') });
    try {
      const r = await runEmulator(env.t, ['--endpoints', '71', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '5', '--settle-ms', '300']);
      assert.equal(r.totals.verified, r.totals.sent);
      const n = endpointNames(0x71n);
      assert.equal(tunFlags(env.t, n.gwi) & 0x800, 0, 'not persistent');
      await sleep(1500);
      await kill(d);
      await waitFor('the interfaces gone', () => ifindexes(env.t).size === 0, 5000, 50);
      assert.ok(!fs.existsSync(path.join(stateDir, 'state')), 'no state file');
    } finally {
      await stopDaemon(d);
      deleteDevices(env.t);
    }
  });

  test('an adopted endpoint whose ENI sends nothing is destroyed by -t as usual (DESTROY), counted from the adoption', async () => {
    const stateDir = path.join(env.dir, 'state-idle');
    const log = path.join(env.dir, 'idle.log');
    const args = ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-t', '3', '--snapshot-interval', '1', '--state-dir', stateDir];
    let d = await startDaemon(env.t, args, { GWLBTUN_TEST_HOOK_LOG: log });
    try {
      await runEmulator(env.t, ['--endpoints', 'a1', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '5', '--settle-ms', '300']);
      const t0 = Date.now();
      await waitFor('a snapshot', () => fs.existsSync(path.join(stateDir, 'state')) && fs.statSync(path.join(stateDir, 'state')).mtimeMs > t0, 5000, 50);
      await kill(d);
      await sleep(1000); // longer down than -t leaves after the last packet: counted from the adoption
      d = await startDaemon(env.t, args, { GWLBTUN_TEST_HOOK_LOG: log });
      const up = Date.now();
      assert.match(d.output(), /adopted 1 endpoint\(s\)/);
      const n = endpointNames(0xa1n);
      await waitFor('DESTROY of the idle adopted endpoint', () => hookEvents(log).some((l) => l.startsWith('DESTROY')), 8000, 50);
      const after = Date.now() - up;
      assert.ok(after >= 2500, `destroyed ${after} ms after the start: -t counts from the adoption`);
      assert.deepEqual(hookEvents(log).filter((l) => !l.startsWith('done')), [`CREATE ${n.gwi} ${n.gwo} ${n.hex}`, `DESTROY ${n.gwi} ${n.gwo} ${n.hex}`]);
      await waitFor('the interfaces gone', () => ifindexes(env.t).size === 0, 5000, 50);
    } finally {
      await stopDaemon(d);
      deleteDevices(env.t);
    }
  });

  test('an exit at once (a second SIGTERM during DESTROY) is no crash: the interfaces go, no state file', async () => {
    const stateDir = path.join(env.dir, 'state-twice');
    const log = path.join(env.dir, 'twice.log');
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '--snapshot-interval', '1', '--state-dir', stateDir], { GWLBTUN_TEST_HOOK_LOG: log, GWLBTUN_TEST_HOOK_DESTROY_SLEEP: '5' });
    try {
      await runEmulator(env.t, ['--endpoints', '91,92', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '5', '--settle-ms', '300']);
      await waitFor('a state file', () => fs.existsSync(path.join(stateDir, 'state')), 5000, 50);
      d.proc.kill('SIGTERM');
      await waitFor('DESTROY started', () => hookEvents(log).some((l) => l.startsWith('DESTROY')), 5000, 50);
      d.proc.kill('SIGTERM');
      assert.equal((await d.exited).code, 1);
      await waitFor('the interfaces gone', () => ifindexes(env.t).size === 0, 5000, 50);
      assert.ok(!fs.existsSync(path.join(stateDir, 'state')), 'no state file');
    } finally {
      await stopDaemon(d);
      deleteDevices(env.t);
    }
  });

  test('a corrupt state file: one line, a start afresh (leftovers destroyed with DESTROY), traffic works', async () => {
    const hooks = path.join(env.dir, 'corrupt.log');
    const stateDir = path.join(env.dir, 'state-bad');
    const file = path.join(stateDir, 'state');
    const args = ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '--snapshot-interval', '1', '--state-dir', stateDir];
    const henv = { GWLBTUN_TEST_HOOK_LOG: hooks };
    let d = await startDaemon(env.t, args, henv);
    try {
      const em = ['--endpoints', '81', '--families', '4,6', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '5', '--settle-ms', '300'];
      assert.equal((await runEmulator(env.t, em)).totals.lost, 0);
      const n = endpointNames(0x81n);
      const before = ifindexes(env.t).get(n.gwi);
      const t0 = Date.now();
      await waitFor('a snapshot', () => fs.existsSync(file) && fs.statSync(file).mtimeMs > t0, 5000, 50);
      await kill(d);
      // One byte of the flows changed: the checksum catches it.
      const b = fs.readFileSync(file);
      b[100] ^= 0xff;
      fs.writeFileSync(file, b);
      d = await startDaemon(env.t, args, henv);
      const out = d.output();
      assert.equal(out.match(/state file \S+ not used \(checksum mismatch \(corrupt\)\): starting afresh/g)?.length, 1, out);
      assert.deepEqual(hookEvents(hooks).filter((l) => l.startsWith('DESTROY')), [`DESTROY ${n.gwi} ${n.gwo} ${n.hex}`], 'the leftover destroyed with its hook');
      assert.equal(ifindexes(env.t).size, 0, 'no leftover');
      assert.equal((await runEmulator(env.t, em)).totals.lost, 0);
      assert.equal(hookEvents(hooks).filter((l) => l.startsWith('CREATE')).length, 2, 'created anew');
      assert.notEqual(ifindexes(env.t).get(n.gwi), before, 'a new interface');
      assert.equal((await stopDaemon(d, 15000)).code, 0);
      assert.equal(ifindexes(env.t).size, 0);
    } finally {
      await stopDaemon(d);
      deleteDevices(env.t);
    }
  });
});
