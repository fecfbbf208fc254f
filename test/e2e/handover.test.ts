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
import { buildInnerPacket, concatBytes } from '../../src/testkit/build';
import { endpointNames } from '../../src/wire/eni';
import { writeGeneveHeader } from '../../src/wire/geneve';
import { nsSpawnArgs, type Topology } from '../../src/sim/topology';
import { hookEvents, links, metrics, nsRun, RECORD_HOOK, ROOT, runEmulator, sendFromGwlb, sleep, startDaemon, startReplyServer, stopDaemon, useEnv, waitFor, type EmuReport } from './lib';
import { drop, mv } from './probe';
import { gone, ifindexes, stopPid, takeover } from './handover-lib';
import { HANDOVER_VERSION } from '../../src/control/handover';

const PORT = 8193;
const QUIET = endpointNames(0x5eed0000c0ffe1n);
const LOAD = ['41', '42', '43'].map((h) => endpointNames(BigInt('0x' + h)));
const CLIENT = '203.0.113.200';
const SERVER = '203.0.113.201';
const GWLB_SPORT = 40321;
const COOKIE = 0x5eed;

/** The quiet flow's one datagram from GWLB: GWLB's three options + UDP CLIENT:40000 -> SERVER:53. */
function quietDatagram(): { dgram: Uint8Array; header: Uint8Array } {
  const hdr = new Uint8Array(256);
  const len = writeGeneveHeader(hdr, 0, { protocol: 0x0800, eni: 0x5eed0000c0ffe1n, attachment: 0x77n, cookie: COOKIE });
  const inner = buildInnerPacket({ family: 4, proto: 17, src: CLIENT, dst: SERVER, srcPort: 40000, dstPort: 53, payload: new Uint8Array(16).fill(7) });
  return { dgram: concatBytes(hdr.subarray(0, len), inner), header: hdr.slice(0, len) };
}

/** Receive one datagram on GWLB's port 6081 (GWLB namespace); its payload in hex. Bounded: one
 * datagram or 10 s. Resolves once the socket is bound (`got` then waits for the datagram). */
async function captureAtGwlb(t: Topology): Promise<{ got: Promise<string> }> {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => { process.stdout.write('got ' + m.toString('hex') + '\\n'); process.exit(0); });
    s.bind(6081, ${JSON.stringify(t.gwlbIp)}, () => process.stdout.write('bound\\n'));
    setTimeout(() => process.exit(3), 10000);`;
  const a = nsSpawnArgs(t.gwlbNs, process.execPath, ['-e', script]);
  const proc = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => proc.on('close', () => r())); // its output read whole
  await waitFor('the capture socket', () => out.includes('bound') || proc.exitCode !== null);
  return { got: exited.then(() => /^got ([0-9a-f]+)$/m.exec(out)?.[1] ?? '') };
}

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
    let server: Awaited<ReturnType<typeof startReplyServer>> | null = null;
    try {
      // The quiet flow: one packet from GWLB, then the server's returns only. The appliance owns
      // SERVER (a socket receives the flow's packet there) and routes CLIENT out of the flow's gwo-.
      const ip = (args: string[]): void => {
        const r = nsRun(env.t.applianceNs, 'ip', args);
        assert.equal(r.status, 0, r.stderr);
      };
      ip(['addr', 'add', `${SERVER}/32`, 'dev', 'lo']);
      server = await startReplyServer(env.t.applianceNs, SERVER, 53, CLIENT, 40000);
      const quiet = quietDatagram();
      sendFromGwlb(env.t, GWLB_SPORT, [quiet.dgram]);
      await waitFor(`${QUIET.gwo} up`, () => links(env.t.applianceNs).some((l) => l.ifname === QUIET.gwo && l.flags.includes('UP')));
      ip(['route', 'replace', `${CLIENT}/32`, 'dev', QUIET.gwo]);
      const quietBack = (m: Map<string, number>): number => mv(m, `gwlbtun_endpoint_packets_to_gwlb_total{eni="${QUIET.hex}",interface="${QUIET.gwi}"}`);
      await server.reply();
      await waitFor('the quiet flow\'s return', () => quietBack(metrics(env.t, PORT)) === 1);

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
