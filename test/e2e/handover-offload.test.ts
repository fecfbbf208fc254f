// The hand-over (SIGUSR2, src/control/handover.ts) with --offload on: the send device `gwlbtx0`
// (the UDP tunnel GSO TAP, or the USO TUN with GWLBTUN_NO_UDP_TUNNEL_GSO=1) is passed with the
// other descriptors (src/control/workers.ts), so the new process sends through the same device.
// Three hand-overs during bulk TCP from "GWLB" (the offload tests' workload, test/e2e/offload-lib.ts:
// 12 flows, IPv4 and IPv6, jumbo segments, a corrupt checksum, a reordered pair, two workers):
// every inner packet comes back byte for byte as sent (TTL - 1), once, in order per flow, with its
// flow's Geneve header, as the offload tests require without a hand-over; gwlbtx0 keeps its ifindex;
// the last process sent through it (its own counters: they start at zero); no hook ran again.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hookEvents, metrics, nsRun, RECORD_HOOK, sleep, startDaemon, stopDaemon, useEnv } from './lib';
import { drop, mv } from './probe';
import { exchange, matchReturns, workload } from './offload-lib';
import { gone, ifindexes, stopPid, takeover } from './handover-lib';

for (const tier of ['tunnel', 'uso'] as const) {
  describe(`hand-over with --offload on (${tier} tier): gwlbtx0 passed to the new process`, () => {
    const PORT = tier === 'tunnel' ? 8196 : 8197;
    const env = useEnv(`hovo${tier[0]}`);

    test('three hand-overs during bulk TCP: every return byte for byte, once, in order; gwlbtx0 kept and used; no hook', { timeout: 120_000 }, async (t) => {
      // So that the tier is used (on a veth in its default state gwlbtun sends raw: offload.test.ts).
      const k = nsRun(env.t.applianceNs, 'ethtool', ['-K', env.t.applianceIf, 'tx', 'off', 'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off', 'tx-udp-segmentation', 'off']);
      assert.equal(k.status, 0, `ethtool: ${k.stderr}`);
      const d = await startDaemon(env.t, ['-p', String(PORT), '--offload', 'on', '--udpthreads', '2', '-c', RECORD_HOOK, '-r', RECORD_HOOK], {
        GWLBTUN_TEST_HOOK_LOG: env.hookLog,
        ...(tier === 'uso' ? { GWLBTUN_NO_UDP_TUNNEL_GSO: '1' } : {}),
      });
      let pid = d.pid;
      try {
        // 40 rounds of 360 segments, 150 ms apart (6 s); the first packet alone, for the endpoint.
        const runs = workload(40);
        const warm = runs[0].shift()!;
        const all = [warm, ...runs.flat()];
        const first = await exchange(env, [[warm]], 1);
        assert.equal(first.length, 1, 'the first packet came back');
        const dev = ifindexes(env.t, /^gwlbtx0$/);
        assert.equal(dev.size, 1, 'the send device exists');
        const load = exchange(env, runs, all.length - 1, 150);
        const pids = [pid];
        const pauses: number[] = [];
        for (let i = 0; i < 3; i++) {
          await sleep(1200);
          process.kill(pid, 'SIGUSR2');
          const next = await takeover(d, pid);
          await waitGone(pid);
          pids.push(next.pid);
          pauses.push(next.pauseMs);
          pid = next.pid;
          assert.deepEqual(ifindexes(env.t, /^gwlbtx0$/), dev, 'gwlbtx0 kept, with its ifindex');
        }
        const back = [...first, ...(await load)];
        const m = metrics(env.t, PORT);
        const matched = matchReturns(all, back);
        assert.equal(matched, all.length, `all ${all.length} packets came back (drops: ${[...m].filter(([n, v]) => n.startsWith('gwlbtun_drops_total') && v > 0).join(' ')})`);
        assert.doesNotMatch(d.output(), /no hand-over now/, 'never refused');
        assert.equal(d.output().match(new RegExp(`offloads: gwlbtx0 taken over \\(${tier === 'tunnel' ? 'UDP tunnel GSO' : 'USO'} tier, returns through gwlbtx0 until`, 'g'))?.length, 3, 'each new process says so, sending through it');
        // The last process (counters from zero) sent super-packets through the same device.
        assert.equal(mv(m, 'gwlbtun_send_device_in_use'), 1, 'the send device in use');
        const through = tier === 'tunnel' ? mv(m, 'gwlbtun_tun_tunneled_packets_total') : mv(m, 'gwlbtun_tun_uso_packets_total');
        assert.ok(through > 0, `the new process sent through gwlbtx0 (${through} segments)`);
        assert.equal(mv(m, 'gwlbtun_tun_tap_errors_total') + mv(m, 'gwlbtun_tun_uso_errors_total'), 0, 'no device write failed');
        assert.equal(drop(m, 'no_flow'), 0, 'no return without its flow');
        assert.deepEqual(hookEvents(env.hookLog).filter((l) => !l.startsWith('done')).map((l) => l.split(' ')[0]), ['CREATE'], 'one CREATE, nothing since');
        t.diagnostic(`${tier}: PIDs ${pids.join(' -> ')}; traffic paused ${pauses.join(', ')} ms; ${matched} of ${all.length} returned byte for byte; last process: ${through} segments through gwlbtx0`);
      } finally {
        await stopDaemon(d, 15000);
        await stopPid(pid);
      }
    });
  });
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 300 && !gone(pid); i++) await sleep(50);
  assert.ok(gone(pid), `PID ${pid} exited`);
}
