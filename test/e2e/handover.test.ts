// The hand-over (SIGUSR2, src/control/handover.ts; docs/operations.md "Upgrading in place"),
// against the real daemon:
// - three hand-overs during a steady bidirectional load of the emulator (three endpoints, UDP and
//   TCP, IPv4 and IPv6, two workers): nothing lost either way, every return verified with its
//   flow's header by the emulator, no hook run, every interface kept (same ifindex), a new PID
//   each time; plus one flow whose client is quiet after its first packet (hand-made: one
//   datagram from the GWLB namespace, then only returns from a server in the appliance
//   namespace), whose returns go back after each hand-over with the header GWLB sent once;
// - a new process that reads another hand-over version falls back to a restart and says so;
// - a new process that dies before it is ready leaves the running one as it was.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { endpointNames } from '../../src/wire/eni';
import { hookEvents, links, metrics, RECORD_HOOK, ROOT, runEmulator, sleep, startDaemon, stopDaemon, useEnv, waitFor, type EmuReport } from './lib';
import { drop } from './probe';
import { gone, ifindexes, stopPid, takeover } from './handover-lib';
import { captureAtGwlb, LOAD, QUIET, startQuietFlow } from './quiet';
import { HANDOVER_VERSION } from '../../src/control/handover';

const PORT = 8193;

/** systemd's notification socket, played by fixtures/notify-recv.c (compiled here): what the
 * daemon sends to it, one line per datagram. stop() kills it by its PID. */
async function notifySocket(dir: string): Promise<{ path: string; lines: () => string[]; stop: () => void }> {
  const bin = path.join(dir, 'notify-recv');
  const cc = spawnSync('cc', ['-O1', '-o', bin, path.join(ROOT, 'test', 'e2e', 'fixtures', 'notify-recv.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc notify-recv.c: ${cc.stderr}`);
  const sock = path.join(dir, 'notify.sock');
  const proc = spawn(bin, [sock, '120'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor('the notification socket', () => out.startsWith('ready\n') || proc.exitCode !== null);
  return {
    path: sock,
    lines: () => out.split('\n').slice(1, -1),
    stop: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

describe('hand-over (SIGUSR2)', () => {
  const env = useEnv('hov');

  test('three hand-overs under load: nothing lost either way, headers verified, no hook run, interfaces kept, a quiet flow kept', async (t) => {
    const hooks = path.join(env.dir, 'hooks.log');
    const notify = await notifySocket(env.dir);
    const d = await startDaemon(env.t, ['-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '--udpthreads', '2'], { GWLBTUN_TEST_HOOK_LOG: hooks, NOTIFY_SOCKET: notify.path }).catch((e: Error) => {
      notify.stop();
      throw e;
    });
    let pid = d.pid;
    let server: Awaited<ReturnType<typeof startQuietFlow>> | null = null;
    try {
      // The quiet flow: one packet from GWLB, then the server's returns only (test/e2e/quiet.ts).
      server = await startQuietFlow(env.t, PORT);
      const quiet = server;
      const quietBack = server.back;

      // The load: 24 flows, 9,600 packets at 800 a second (12 s); three hand-overs during it.
      let emuEnd = 0;
      const emu: Promise<EmuReport> = runEmulator(env.t, [
        '--endpoints', LOAD.map((n) => n.hex.replace(/^0+/, '')).join(','), '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2',
        '--rate', '800', '--packets', '400', '--settle-ms', '2000', '--duration', '40',
      ], 90000).finally(() => (emuEnd = Date.now()));
      await waitFor('every endpoint up', () => {
        const names = links(env.t.applianceNs).filter((l) => l.flags.includes('UP')).map((l) => l.ifname);
        return LOAD.every((n) => names.includes(n.gwi) && names.includes(n.gwo));
      }, 15000, 100);
      await sleep(700);
      const before = ifindexes(env.t);
      assert.equal(before.size, 8, `four endpoints' interfaces: ${[...before.keys()].join(' ')}`);
      const pids = [pid];
      const pauses: number[] = [];
      for (let i = 0; i < 3; i++) {
        process.kill(pid, 'SIGUSR2');
        const next = await takeover(d, pid);
        await waitFor(`PID ${pid} to exit`, () => gone(pid), 15000, 50);
        assert.ok(!pids.includes(next.pid), `a new PID: ${next.pid} after ${pids.join(', ')}`);
        pids.push(next.pid);
        pauses.push(next.pauseMs);
        pid = next.pid;
        assert.equal(emuEnd, 0, `hand-over ${i + 1} was done while the load ran`);
        assert.deepEqual(ifindexes(env.t), before, 'every interface kept, with its ifindex');
        // The quiet flow's return after the hand-over: its flow found (no no_flow), sent to GWLB.
        await server.reply();
        const m = await waitFor('the quiet flow\'s return', () => {
          const x = metrics(env.t, PORT);
          return quietBack(x) >= 1 ? x : undefined;
        });
        assert.equal(drop(m, 'no_flow'), 0, 'no return without its flow');
        await sleep(800);
      }
      const r = await emu;
      assert.equal(r.totals.sent, 24 * 400);
      assert.equal(r.totals.lost, 0, `nothing lost: ${JSON.stringify(r.totals)}`);
      assert.equal(r.totals.verified, r.totals.sent, 'every packet came back, verified with its flow\'s header');
      // The emulator saw the quiet flow's three returns (not its flows: their UDP port is another)
      // and nothing else it could not verify.
      assert.deepEqual(Object.entries(r.totals.bad).filter(([, v]) => v !== 0), [['unknown_port', 3]], 'the quiet flow\'s returns, nothing bad');
      // No hook ran after the endpoints were created: one CREATE each, no DESTROY.
      const ev = hookEvents(hooks).filter((l) => !l.startsWith('done'));
      assert.deepEqual(ev.filter((l) => l.startsWith('DESTROY')), [], 'no DESTROY');
      assert.deepEqual(ev.map((l) => l.split(' ')[2]).sort(), [QUIET, ...LOAD].map((n) => n.gwo).sort(), 'one CREATE per endpoint, all before the hand-overs');

      // The quiet flow's return carries the header GWLB sent with its one packet, cookie and all.
      const cap = await captureAtGwlb(env.t);
      await server.reply();
      const got = await cap.got;
      assert.equal(got.slice(0, quiet.header.length * 2), Buffer.from(quiet.header).toString('hex'), 'the flow\'s own Geneve header');
      // systemd (Type=notify) would have followed: ready once, then each new main PID.
      assert.deepEqual(notify.lines(), ['READY=1', ...pids.slice(1).map((p) => `MAINPID=${p}`)]);
      t.diagnostic(`PIDs ${pids.join(' -> ')}; traffic paused ${pauses.join(', ')} ms; sent ${r.totals.sent}, verified ${r.totals.verified}, lost ${r.totals.lost}`);

      // The last generation stops as usual: DESTROY once per endpoint.
      await stopPid(pid);
      const destroyed = hookEvents(hooks).filter((l) => l.startsWith('DESTROY')).map((l) => l.split(' ')[2]).sort();
      assert.deepEqual(destroyed, [QUIET, ...LOAD].map((n) => n.gwo).sort(), 'DESTROY once per endpoint at the end');
      assert.match(d.output(), /hand-over to PID \d+ done \(\d+ flow\(s\) passed, snapshot [\d.]+ ms\)/);
    } finally {
      server?.stop();
      await stopDaemon(d, 15000);
      await stopPid(pid);
      notify.stop();
    }
  });

  test('a new process that reads another hand-over version falls back to a restart and says so', async () => {
    const hooks = path.join(env.dir, 'fallback.log');
    const notify = await notifySocket(env.dir);
    const d = await startDaemon(env.t, ['-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: hooks, GWLBTUN_FAILPOINT: 'handover-version:99', NOTIFY_SOCKET: notify.path }).catch((e: Error) => {
      notify.stop();
      throw e;
    });
    let pid = d.pid;
    try {
      const args = ['--endpoints', '51', '--families', '4', '--protos', 'udp', '--flows', '2', '--rate', '500', '--packets', '5', '--settle-ms', '500'];
      const r1 = await runEmulator(env.t, args);
      assert.equal(r1.totals.verified, r1.totals.sent);
      const n51 = endpointNames(0x51n);
      const before = ifindexes(env.t).get(n51.gwi);
      process.kill(pid, 'SIGUSR2');
      const exit = await d.exited;
      assert.equal(exit.code, 0, d.output());
      const m = await waitFor('the new process started', () => /handing over to a new process \(PID (\d+)/.exec(d.output()) ?? undefined);
      pid = Number(m[1]);
      await waitFor('the new process started', () => d.output().split('gwlbtun started').length === 3, 15000, 50);
      const out = d.output();
      assert.equal(out.match(/this build reads version 99: falling back to a restart/g)?.length, 1, `one clear line:\n${out}`);
      assert.match(out, new RegExp(`it reads hand-over version 99, not ${HANDOVER_VERSION}; shutting down so that it starts anew`));
      assert.deepEqual(hookEvents(hooks).filter((l) => l.startsWith('DESTROY')), [`DESTROY ${n51.gwi} ${n51.gwo} ${n51.hex}`], 'a restart: DESTROY ran');
      assert.ok(!gone(pid));
      // The new process works, as after a restart: the endpoint is created anew (CREATE again).
      const r2 = await runEmulator(env.t, args);
      assert.equal(r2.totals.verified, r2.totals.sent);
      assert.equal(hookEvents(hooks).filter((l) => l.startsWith('CREATE')).length, 2, 'CREATE again');
      assert.notEqual(ifindexes(env.t).get(n51.gwi), before, 'a new interface');
      // Under systemd the new process is the main one before the old one exits, and ready later.
      assert.deepEqual(notify.lines(), ['READY=1', `MAINPID=${pid}`, 'READY=1']);
    } finally {
      await stopDaemon(d, 15000);
      await stopPid(pid);
      notify.stop();
    }
  });

  test('a new process that dies before it is ready leaves the running one as it was', async () => {
    const hooks = path.join(env.dir, 'dies.log');
    const d = await startDaemon(env.t, ['-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: hooks, GWLBTUN_FAILPOINT: 'handover-exit' });
    try {
      const args = ['--endpoints', '61', '--families', '4,6', '--protos', 'udp,tcp', '--flows', '1', '--rate', '500', '--packets', '5', '--settle-ms', '500'];
      assert.equal((await runEmulator(env.t, args)).totals.lost, 0);
      process.kill(d.pid, 'SIGUSR2');
      await waitFor('the hand-over to fail', () => /hand-over to PID \d+ failed \(it exited before it was ready\); this process carries on/.test(d.output()), 15000, 50);
      const r = await runEmulator(env.t, args);
      assert.equal(r.totals.lost, 0);
      assert.equal(r.totals.verified, r.totals.sent);
      assert.equal(metrics(env.t, PORT).get('gwlbtun_up'), 1);
      assert.deepEqual(hookEvents(hooks).filter((l) => !l.startsWith('done')).map((l) => l.split(' ')[0]), ['CREATE'], 'no hook beyond the first CREATE');
      assert.equal(d.proc.exitCode, null, 'still running');
    } finally {
      const exit = await stopDaemon(d, 15000);
      assert.equal(exit.code, 0, d.output());
    }
  });
});
