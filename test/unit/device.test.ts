// The device boundary (src/io/device.ts) over the in-memory addon (src/testkit/fake.ts): the send
// tier chosen at construction, the raw tier's batch and per-datagram outcome, and a super-packet
// offered whole -- sent as one TAP frame or as USO writes, or declined and then cut by the next
// read exactly as if it had never been offered. The data plane's side (lookups, counters) is
// played by the test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeAddon } from '../../src/testkit/fake';
import { TIER_RAW, TIER_TUNNEL, TIER_USO, TunDevice, type DeviceOptions } from '../../src/io/device';
import { ip4FromString } from '../../src/io/native';
import { Drop } from '../../src/wire/reasons';
import { TX_TAP_FRONT } from '../../src/wire/txframe';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, writeVnetHdr } from '../../src/wire/virtio';

const LOCAL = ip4FromString('198.18.0.2') | 0;
const GWLB = ip4FromString('198.18.0.1') | 0;
const MAC = [2, 0x11, 0x22, 0x33, 0x44, 0x55];
/** A stand-in for a flow's stored Geneve header (what the flow table copies in front). */
const HDR = Uint8Array.from({ length: 24 }, (_, i) => 0xa0 + i);

/** An IPv4 TCP packet 192.0.2.1:1000 -> 198.51.100.2:80 with `payload` bytes (checksums left
 * to the segmentation: its virtio header asks for them). */
function tcp4(payload: number): Uint8Array {
  const n = 40 + payload;
  const p = new Uint8Array(n);
  p[0] = 0x45;
  p[2] = n >> 8;
  p[3] = n & 0xff;
  p[6] = 0x40; // DF
  p[8] = 64;
  p[9] = 6;
  p.set([192, 0, 2, 1, 198, 51, 100, 2], 12);
  p.set([0x03, 0xe8, 0x00, 0x50, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff], 20);
  for (let i = 40; i < n; i++) p[i] = (i * 7) & 0xff;
  return p;
}

/** A TCP super-packet behind its virtio header: `payload` bytes cut at gsoSize. */
function superTcp4(payload: number, gsoSize: number): Uint8Array {
  const inner = tcp4(payload);
  const v = new Uint8Array(10 + inner.length);
  writeVnetHdr(v, 0, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 40, gsoSize, 20, 16);
  v.set(inner, 10);
  return v;
}

function rig(o: { vnet: boolean; tap?: boolean; uso?: boolean; mac?: number[] }): { nat: FakeAddon; dev: TunDevice; gwo: number } {
  const nat = new FakeAddon();
  const gwo = nat.tunOpen('gwo-test', o.vnet);
  const opts: DeviceOptions = {
    rawFd: nat.rawOpen(0),
    writeBatch: 64,
    vnet: o.vnet,
    tapFd: o.tap ? nat.tapOpen('gwlbtx0', 24) : -1,
    tapMac: o.mac ?? (o.tap ? MAC : []),
    usoFd: o.uso ? nat.tunOpen('gwlbtx0', true) : -1,
  };
  return { nat, dev: new TunDevice(nat, opts), gwo };
}

/** The data plane's part for the plain packets of one read: a flow header in front, queued. */
function queueAll(dev: TunDevice, n: number): void {
  for (let t = dev.first; t < dev.first + n; t++) {
    dev.buf.set(HDR, dev.offset(t) - HDR.length);
    dev.queue(t, HDR.length, LOCAL, GWLB, 4242);
  }
  dev.done(n);
}

test('the send tier is chosen once, at construction', () => {
  const cases: { name: string; o: Parameters<typeof rig>[0]; tier: number }[] = [
    { name: 'no offloads', o: { vnet: false, tap: true, uso: true }, tier: TIER_RAW },
    { name: 'offloads, no send device', o: { vnet: true }, tier: TIER_RAW },
    { name: 'offloads, TAP', o: { vnet: true, tap: true }, tier: TIER_TUNNEL },
    { name: 'offloads, USO', o: { vnet: true, uso: true }, tier: TIER_USO },
    { name: 'offloads, TAP without its MAC', o: { vnet: true, tap: true, mac: [2, 0, 0] }, tier: TIER_RAW },
  ];
  for (const c of cases) assert.equal(rig(c.o).dev.tier, c.tier, c.name);
});

test('raw tier: plain packets read, queued with their outer header, sent in one batch, each outcome reported', () => {
  for (const fault of ['none', 'refused', 'busy'] as const) {
    const { nat, dev, gwo } = rig({ vnet: false });
    const pkts = [tcp4(10), tcp4(200), tcp4(1000)];
    for (const p of pkts) nat.deliver('gwo-test', p);
    let k = 0;
    nat.rawFault = () => (k++ === 1 ? (fault === 'refused' ? 1 : fault === 'busy' ? 11 : 0) : 0);
    assert.equal(dev.read(gwo, 64), 3);
    assert.equal(dev.whole, false);
    queueAll(dev, 3);
    assert.equal(dev.queued, 3);
    assert.equal(dev.send(), 3);
    assert.equal(dev.queued, 0);
    const want = fault === 'none' ? [0, 0, 0] : fault === 'refused' ? [0, Drop.RAW_SEND_ERROR, 0] : [0, Drop.RAW_SEND_BUSY, Drop.RAW_SEND_BUSY];
    assert.deepEqual([0, 1, 2].map((i) => dev.outcomeOf(i)), want, fault);
    for (let i = 0; i < 3; i++) assert.equal(dev.wireLen(i), 28 + HDR.length + pkts[i].length);
    const sent = nat.sent.map((s) => s.data);
    assert.equal(sent.length, want.filter((w) => w === 0).length, fault);
    // The datagram: outer IPv4/UDP (from the appliance, to GWLB, 4242 -> 6081), the header, the packet.
    const d = sent[0];
    assert.deepEqual([...d.subarray(12, 20)], [198, 18, 0, 2, 198, 18, 0, 1]);
    assert.deepEqual([...d.subarray(20, 24)], [0x10, 0x92, 0x17, 0xc1]);
    assert.deepEqual(d.subarray(28, 28 + HDR.length), HDR);
    assert.deepEqual(d.subarray(28 + HDR.length), pkts[0]);
    dev.reset();
    assert.equal(dev.room, 64);
  }
});

/** What the raw tier sends of one super-packet: cut by the device, each segment queued. */
function rawTierDatagrams(sup: Uint8Array): Uint8Array[] {
  const { nat, dev, gwo } = rig({ vnet: true });
  nat.deliverRaw('gwo-test', sup);
  const n = dev.read(gwo, 64);
  assert.ok(n > 1);
  queueAll(dev, n);
  dev.send();
  return nat.sent.map((s) => s.data);
}

test('tunnel tier: a TCP super-packet is offered whole and goes out as one TAP frame', () => {
  const { nat, dev, gwo } = rig({ vnet: true, tap: true });
  const sup = superTcp4(3000, 1000);
  nat.deliverRaw('gwo-test', sup);
  assert.equal(dev.read(gwo, 64), 0);
  assert.equal(dev.whole, true);
  assert.equal(dev.pending, true);
  assert.equal(dev.wholeLen, sup.length - 10);
  assert.deepEqual(dev.buf.subarray(dev.wholeOff, dev.wholeOff + dev.wholeLen), sup.subarray(10));
  // The lookup writes the flow header in front, over the virtio header (the device saved it).
  dev.buf.set(HDR, dev.wholeOff - HDR.length);
  assert.equal(dev.sendWhole(HDR.length, LOCAL, GWLB, 4242), 3);
  assert.equal(dev.whole, false);
  assert.equal(dev.pending, false);
  const frames = nat.written.filter((w) => w.dev === 'gwlbtx0');
  assert.equal(frames.length, 1);
  assert.equal(frames[0].data.length, TX_TAP_FRONT + HDR.length + sup.length - 10);
  assert.deepEqual(frames[0].data.subarray(TX_TAP_FRONT, TX_TAP_FRONT + HDR.length), HDR);
  assert.deepEqual({ ...dev.outcome }, { packets: 3, bytes: 3000 + 3 * 40, wire: 3000 + 3 * 40 + 3 * (28 + HDR.length), refused: 0, busy: 0, malformed: 0 });
  assert.deepEqual([dev.tunnelSupers, dev.tunnelSegments, dev.tunnelErrors], [1, 3, 0]);
  assert.equal(dev.read(gwo, 64), 0, 'nothing left');
});

test('a declined super-packet (a lookup miss, a refused TAP write) is cut by the next read, as the raw tier cuts it', () => {
  const sup = superTcp4(3000, 1000);
  const want = rawTierDatagrams(sup);
  assert.equal(want.length, 3);
  for (const why of ['miss', 'tap refused'] as const) {
    const { nat, dev, gwo } = rig({ vnet: true, tap: true });
    nat.deliverRaw('gwo-test', sup);
    assert.equal(dev.read(gwo, 64), 0);
    assert.equal(dev.whole, true);
    // A miss may leave scratch bytes in front of the packet (FlowTable.lookupInto).
    dev.buf.fill(0xee, dev.wholeOff - 60, dev.wholeOff);
    if (why === 'miss') dev.decline();
    else {
      nat.tunFault = (d) => (d === 'gwlbtx0' ? 105 : 0);
      dev.buf.set(HDR, dev.wholeOff - HDR.length);
      assert.equal(dev.sendWhole(HDR.length, LOCAL, GWLB, 4242), 0);
      assert.equal(dev.tunnelErrors, 1);
    }
    assert.equal(dev.whole, false);
    const n = dev.read(gwo, 64);
    assert.equal(n, 3, why);
    assert.equal(dev.whole, false);
    queueAll(dev, n);
    dev.send();
    assert.deepEqual(nat.sent.map((s) => s.data), want, why);
  }
});

test('rawOnly: super-packets are not offered, the raw tier cuts them', () => {
  const sup = superTcp4(3000, 1000);
  const { nat, dev, gwo } = rig({ vnet: true, tap: true });
  dev.rawOnly = true;
  nat.deliverRaw('gwo-test', sup);
  assert.equal(dev.read(gwo, 64), 3);
  assert.equal(dev.whole, false);
});

test('a super-packet offered whole never overtakes packets read before it', () => {
  const { nat, dev, gwo } = rig({ vnet: true, tap: true });
  nat.deliver('gwo-test', tcp4(100));
  nat.deliverRaw('gwo-test', superTcp4(3000, 1000));
  assert.equal(dev.read(gwo, 64), 1, 'the plain packet first; the super-packet waits');
  assert.equal(dev.whole, false);
  assert.equal(dev.pending, true);
  queueAll(dev, 1);
  dev.send();
  assert.equal(dev.read(gwo, 64), 0);
  assert.equal(dev.whole, true);
});

test('USO tier: the segments go out as UDP GSO writes, the datagrams byte for byte those of the raw tier', () => {
  const sup = superTcp4(3000, 1000);
  const want = rawTierDatagrams(sup);
  const { nat, dev, gwo } = rig({ vnet: true, uso: true });
  nat.deliverRaw('gwo-test', sup);
  assert.equal(dev.read(gwo, 64), 0);
  assert.equal(dev.whole, true);
  dev.buf.set(HDR, dev.wholeOff - HDR.length);
  assert.equal(dev.sendWhole(HDR.length, LOCAL, GWLB, 4242), 3);
  assert.equal(nat.written.filter((w) => w.dev === 'gwlbtx0').length, 1);
  assert.equal(dev.outcome.packets, 3);
  assert.deepEqual([dev.uso!.supers, dev.uso!.segments, dev.uso!.errors], [1, 3, 0]);
  // The fake routes the USO packet out, cut into datagrams (forwarded: TTL 63 where the raw socket
  // sends 64; the UDP checksum computed where the raw tier leaves it 0).
  const got = nat.sent.map((s) => s.data);
  assert.equal(got.length, 3);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(got[i].subarray(12, 26), want[i].subarray(12, 26), `datagram ${i}: addresses, ports, UDP length`);
    assert.deepEqual(got[i].subarray(28), want[i].subarray(28), `datagram ${i}: Geneve header and segment`);
  }
});
