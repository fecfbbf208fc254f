// End to end, on real kernel parts: the GWLB emulator in one namespace sends Geneve over a veth to
// the real daemon (bin/gwlbtun) in another; the one-arm example hook makes the kernel route
// every decapsulated packet from gwi-<X> back out of gwo-<X>; the daemon returns it to the
// emulator, which verifies each packet byte for byte (header identical, TTL - 1 from forwarding).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  hookCalls,
  links,
  metrics,
  nsRun,
  RECORD_HOOK,
  runEmulator,
  udpSendInNs,
  useEnv,
  waitFor,
  type EmuReport,
} from './lib';

const HEALTH_PORT = 8081;
// Three endpoints at once, including the extremes of the ENI ID range.
const ENIS = ['1', 'ffffffffffffffff', '2b8ee1d4db0c51c4'];

function assertAllVerified(r: EmuReport, what: string): void {
  for (const ep of r.endpoints) {
    assert.ok(ep.sent > 0, `${what}: endpoint ${ep.eni} sent nothing`);
    assert.deepEqual(ep.bad, Object.fromEntries(Object.entries(ep.bad).filter(([, v]) => v === 0)), `${what}: endpoint ${ep.eni} bad packets: ${JSON.stringify(ep.bad)}`);
    assert.equal(ep.verified, ep.sent, `${what}: endpoint ${ep.eni}: ${ep.verified} of ${ep.sent} verified (lost ${ep.lost})`);
  }
}

describe('data path: Geneve in, TUN out, kernel forwarding, back to GWLB', () => {
  const env = useEnv('dp', { args: ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(HEALTH_PORT)] });

  test('IPv4 and IPv6 TCP, UDP and ICMP round trips on three endpoints, every packet verified', async () => {
    const r = await runEmulator(env.t, [
      '--endpoints', ENIS.join(','),
      '--families', '4,6',
      '--protos', 'tcp,udp,icmp',
      '--flows', '2',
      '--packets', '20',
      '--rate', '3000',
      '--size', '300',
      '--ttl-decrement', '1',
      '--settle-ms', '1500',
    ]);
    assert.equal(r.endpoints.length, 3);
    assertAllVerified(r, 'round trip');
  });

  test('interfaces are named from the ENI ID in base 60, up, with MTU 8500 (and 2048-packet queues)', () => {
    const ls = links(env.t.applianceNs);
    for (const b60 of ['1', 'uur953OEv0f']) {
      for (const prefix of ['gwi-', 'gwo-']) {
        const l = ls.find((x) => x.ifname === prefix + b60);
        assert.ok(l, `${prefix}${b60} exists (have ${ls.map((x) => x.ifname).join(' ')})`);
        assert.equal(l.mtu, 8500);
        assert.equal(l.txqlen, 2048);
        assert.ok(l.flags.includes('UP'), `${l.ifname} is up`);
      }
    }
    assert.equal(ls.filter((x) => x.ifname.startsWith('gwi-')).length, 3);
  });

  test('create hook got exactly CREATE gwi-X gwo-X <17-digit ENI hex>, no shell', () => {
    const calls = hookCalls(env.hookLog);
    for (const [eni, b60] of [['00000000000000001', '1'], ['0ffffffffffffffff', 'uur953OEv0f'], ['02b8ee1d4db0c51c4', '5bqWvzLwwkk']]) {
      const want = ['CREATE', `gwi-${b60}`, `gwo-${b60}`, eni];
      assert.ok(calls.some((a) => JSON.stringify(a) === JSON.stringify(want)), `hook argv ${want.join(' ')} in:\n${calls.join('\n')}`);
    }
    assert.equal(calls.length, 3, 'one CREATE per endpoint, nothing else yet');
  });

  test('each endpoint receives only its own traffic', async () => {
    const before = new Map(links(env.t.applianceNs).map((l) => [l.ifname, l.stats64?.rx.packets ?? 0]));
    const r = await runEmulator(env.t, ['--endpoints', '1,ffffffffffffffff', '--families', '4', '--protos', 'udp', '--flows', '3', '--packets', '10', '--rate', '2000', '--ttl-decrement', '1']);
    assertAllVerified(r, 'isolation');
    const afterLinks = new Map(links(env.t.applianceNs).map((l) => [l.ifname, l.stats64?.rx.packets ?? 0]));
    const delta = (n: string): number => (afterLinks.get(n) ?? 0) - (before.get(n) ?? 0);
    // rx on a TUN device counts what gwlbtun wrote into it.
    for (const name of ['gwi-1', 'gwi-uur953OEv0f']) {
      const ep = r.endpoints.find((e) => e.name === name);
      assert.ok(ep, `emulator reports ${name}`);
      assert.equal(delta(name), ep.sent, `${name} received exactly its own packets`);
    }
    const third = [...afterLinks.keys()].find((n) => n.startsWith('gwi-') && n !== 'gwi-1' && n !== 'gwi-uur953OEv0f')!;
    assert.equal(delta(third), 0, `${third} got nothing`);
  });

  test('a new cookie for a reused 5-tuple is what comes back', async () => {
    const r = await runEmulator(env.t, ['--endpoints', '2b8ee1d4db0c51c4', '--families', '4,6', '--protos', 'tcp,udp', '--flows', '2', '--packets', '10', '--phases', '3', '--rate', '2000', '--ttl-decrement', '1']);
    assertAllVerified(r, 'recookie');
  });

  test('a packet routed out of gwo-<X> for a flow never seen from GWLB is dropped and counted', async () => {
    const before = metrics(env.t, HEALTH_PORT).get('gwlbtun_drops_total{reason="no_flow"}') ?? 0;
    const ns = env.t.applianceNs;
    assert.equal(nsRun(ns, 'ip', ['addr', 'add', '192.0.2.250/32', 'dev', 'lo']).status, 0);
    assert.equal(nsRun(ns, 'ip', ['route', 'add', '203.0.113.250/32', 'dev', 'gwo-1']).status, 0);
    udpSendInNs(ns, '192.0.2.250', '203.0.113.250', 9, 5);
    const n = await waitFor('no_flow drops', () => {
      const v = metrics(env.t, HEALTH_PORT).get('gwlbtun_drops_total{reason="no_flow"}') ?? 0;
      return v - before >= 5 ? v - before : undefined;
    });
    assert.ok(n >= 5);
  });
});
