// The egress device towards GWLB decides whether --offload on's send device may be used (issue 19,
// item 3; src/control/egress.ts): the pure rule, table-driven (driver + features -> safe or why
// not), and the main thread's watch over the fake addon (routes, devices, re-checks, one log line
// per change, the workers told).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EGRESS_RECHECK_MS, EgressWatch, tierSafety, type SendTier } from '../../src/control/egress';
import { FakeAddon } from '../../src/testkit/fake';
import { defaultLogConfig, Logger } from '../../src/base/log';

// `ethtool -k` of a veth as `ip link add type veth` makes it (kernel 6.18), the features that matter.
const VETH = ['tx-checksum-ip-generic', 'tx-generic-segmentation', 'tx-tcp-segmentation', 'tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation', 'tx-udp-segmentation', 'tx-gso-list'];
const without = (fs: string[], ...off: string[]): string[] => fs.filter((f) => !off.includes(f));
const LO = ['tx-checksum-ip-generic', 'tx-udp-segmentation', 'loopback'];

const TABLE: [string, string, string[], SendTier, boolean][] = [
  ['veth, default', 'veth', VETH, 'tunnel', false],
  ['veth, default', 'veth', VETH, 'uso', false],
  ['veth, tunnel segmentation off, checksums on (measured: bare pseudo-header sums)', 'veth', without(VETH, 'tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation'), 'tunnel', false],
  ['veth, tunnel segmentation and checksums off', 'veth', without(VETH, 'tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation', 'tx-checksum-ip-generic'), 'tunnel', true],
  ['veth, USO off (checksums on: USO inner checksums are complete)', 'veth', without(VETH, 'tx-udp-segmentation'), 'uso', true],
  ['veth, USO off, tunnel on', 'veth', without(VETH, 'tx-udp-segmentation'), 'tunnel', false],
  ['bridge with the features', 'bridge', VETH, 'tunnel', false],
  ['macvlan with the features', 'macvlan', VETH, 'uso', false],
  ['loopback device (no driver named)', '', LO, 'uso', false],
  ['a device naming no driver, without the features', '', ['tx-checksum-ip-generic'], 'uso', true],
  ['a device naming no driver, with them', '', VETH, 'tunnel', false],
  ['ena (a NIC: finishes or never advertises)', 'ena', ['tx-checksum-ipv4', 'tx-generic-segmentation'], 'tunnel', true],
  ['virtio_net', 'virtio_net', ['tx-checksum-ip-generic', 'tx-tcp-segmentation', 'tx-udp-segmentation'], 'uso', true],
  ['mlx5_core with tunnel offloads', 'mlx5_core', VETH, 'tunnel', true],
];

describe('egress device -> send tier', () => {
  for (const [what, driver, features, tier, safe] of TABLE) {
    test(`${what}: the ${tier} tier ${safe ? 'is used' : 'is not'}`, () => {
      const why = tierSafety(tier, { driver, features });
      if (safe) assert.equal(why, null);
      else {
        assert.ok(why !== null);
        assert.match(why, /on unfinished to a local receiver \(.+ on\)$/);
      }
    });
  }

  function watchRig(tier: SendTier = 'tunnel') {
    const nat = new FakeAddon();
    const lines: string[] = [];
    const raw: boolean[] = [];
    const w = new EgressWatch(nat, new Logger(defaultLogConfig(), (l) => lines.push(l)), tier, 'gwlbtx0', (r) => raw.push(r));
    return { nat, lines, raw, w };
  }
  const GWLB = 0xc6120001; // 198.18.0.1
  const GWLB2 = 0xc6130001; // 198.19.0.1

  test('watch: nothing known, nothing decided; a veth towards the first GWLB address: raw, logged once; a route change to a NIC: the device again, logged', () => {
    const { nat, lines, raw, w } = watchRig();
    w.poll([0], 0);
    assert.equal(w.inUse, null);
    assert.deepEqual(raw, []);
    nat.routes.set(GWLB, 'veth1');
    nat.links.set('veth1', { driver: 'veth', features: VETH });
    nat.links.set('eth0', { driver: 'ena', features: ['tx-checksum-ipv4'] });
    w.poll([GWLB >> 0], 100); // as the worker's Int32 cell holds it: a negative number
    assert.equal(w.inUse, false);
    assert.deepEqual(raw, [true]);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /returns to GWLB leave through veth1: driver veth passes UDP tunnel GSO packets and partial checksums on unfinished .*: super-packets are cut here and sent through the raw socket, not through gwlbtx0/);
    // Cheap until the re-check is due: the route changes, nothing looked at yet.
    nat.routes.set(GWLB, 'eth0');
    w.poll([GWLB], 200);
    assert.deepEqual(raw, [true]);
    w.poll([GWLB], 100 + EGRESS_RECHECK_MS);
    assert.equal(w.inUse, true);
    assert.deepEqual(raw, [true, false]);
    assert.equal(lines.length, 2);
    assert.match(lines[1], /leave through eth0, which finishes the work: super-packets go back through gwlbtx0 again/);
    // No change: no line.
    w.poll([GWLB], 100 + 2 * EGRESS_RECHECK_MS);
    assert.equal(lines.length, 2);
  });

  test('watch: a second GWLB address behind a veth makes it raw (every address must be safe); one with no route counts for nothing', () => {
    const { nat, raw, w } = watchRig('uso');
    nat.routes.set(GWLB, 'eth0');
    nat.links.set('eth0', { driver: 'ena', features: [] });
    nat.links.set('veth9', { driver: 'veth', features: VETH });
    w.poll([GWLB, 0], 0);
    assert.deepEqual(raw, [false]);
    w.poll([GWLB, GWLB2], 10); // no route to GWLB2: as before
    assert.deepEqual(raw, [false, false]);
    nat.routes.set(GWLB2, 'veth9');
    w.poll([GWLB, 0], 10 + EGRESS_RECHECK_MS); // remembered though its cell moved on
    assert.deepEqual(raw, [false, false, true]);
  });

  test('watch: a device whose features cannot be read is not trusted', () => {
    const { nat, raw, lines, w } = watchRig();
    nat.routes.set(GWLB, 'gone0');
    w.poll([GWLB], 0);
    assert.deepEqual(raw, [true]);
    assert.match(lines[0], /gone0: its driver and features cannot be read/);
  });
});
