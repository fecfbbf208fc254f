// The packet loop with --offload on (src/io/tun.ts behind src/dataplane/loop.ts and returns.ts),
// over the in-memory addon with virtio headers (src/testkit/fake.ts): a receive batch goes to gwi- as
// TCP super-packets, super-packets read from gwo- are cut back into segments, and everything GWLB
// gets back is, packet for packet, what it sent. Counts are packets, never super-packets.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { C, EP, EP_STRIDE, GLOBAL_CELLS } from '../../src/dataplane/counters';
import { FakeAddon } from '../../src/testkit/fake';
import { applyOffloads, offloadNames } from '../../src/io/offload';
import { buildInnerPacket, concatBytes } from '../../src/testkit/build';
import { writeGeneveHeader } from '../../src/wire/geneve';
import { endpointNames } from '../../src/wire/eni';
import { Drop } from '../../src/wire/reasons';
import { TUN_F_USO4, TUN_F_USO6, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_UDP_TUNNEL_IPV4, writeVnetHdr } from '../../src/wire/virtio';
import { stream, buildSeg, checkPacket } from '../../src/testkit/tcp';
import { coalesce } from './helpers/offload-harness';
import { LoopRig } from './helpers/loop-rig';
import { CTRL_GWLB_IP, CTRL_TX_RAW } from '../../src/dataplane/messages';

const MAX_EP = 4;
const ENI = 0x2b8ee1d4db0c51c4n;

function geneve(cookie: number, inner: Uint8Array): Uint8Array {
  const header = new Uint8Array(64);
  const n = writeGeneveHeader(header, 0, { protocol: inner[0] >> 4 === 6 ? 0x86dd : 0x0800, eni: ENI, attachment: 0x77n, cookie });
  return concatBytes(header.subarray(0, n), inner);
}

class Rig extends LoopRig {
  readonly names = endpointNames(ENI);
  tapFd = -1;

  /** tap: the UDP tunnel GSO TAP; 'uso': the USO device (both named gwlbtx0). */
  constructor(readonly offload: boolean, tap: boolean | 'uso' = false) {
    let tapFd = -1;
    super(MAX_EP, (nat) => {
      if (tap === 'uso') return { offload, txTapFd: -1, txTapMac: [], txUsoFd: nat.tunOpen('gwlbtx0', true) };
      if (tap) tapFd = nat.tapOpen('gwlbtx0', 24);
      return { offload, txTapFd: tapFd, txTapMac: tap ? [2, 0x11, 0x22, 0x33, 0x44, 0x55] : [] };
    });
    this.tapFd = tapFd;
    const gwi = this.nat.tunOpen(this.names.gwi, offload);
    const gwo = this.nat.tunOpen(this.names.gwo, offload);
    if (offload) {
      assert.ok(applyOffloads(this.nat, gwi) > 0);
      assert.ok(applyOffloads(this.nat, gwo) > 0);
    }
    this.control({ t: 'add', hi: Number(ENI >> 32n), lo: Number(ENI & 0xffffffffn), slot: 1, epId: 1 | (1 << 16), gwi, gwo });
    this.turns(1);
  }

  send(inner: Uint8Array, sport: number, cookie = 0xc0ffee): Uint8Array {
    const d = geneve(cookie, inner);
    this.fromGwlb(d, sport);
    return d;
  }

  ep(k: number): number {
    return this.counters[GLOBAL_CELLS + 1 * EP_STRIDE + k];
  }

  /** What GWLB got back: Geneve header + inner packet (the outer 28 bytes checked and removed). */
  returned(): Uint8Array[] {
    return this.nat.sent.map((s) => {
      assert.equal((s.data[2] << 8) | s.data[3], s.data.length);
      return s.data.subarray(28);
    });
  }
}

/** 4 flows, each a run of `n` 1448-byte segments, interleaved as several TCP windows arriving. */
function bulk(n: number, v6 = false): Uint8Array[][] {
  const flows: Uint8Array[][] = [];
  for (let f = 0; f < 4; f++) flows.push(stream({ v6, src: 10 + f, dst: 20, sport: 40000 + f, dport: 443, seq: 1000 * f, id: 100 * f }, n, 1448));
  return flows;
}

describe('packet loop with offloads over the fake addon', () => {
  for (const v6 of [false, true]) {
    test(`bulk TCP over IPv${v6 ? 6 : 4}: coalesced to gwi-, cut back, returned byte for byte; counts are packets`, () => {
      const r = new Rig(true);
      const flows = bulk(15, v6);
      const sent: Uint8Array[] = [];
      for (let k = 0; k < 15; k++) for (let f = 0; f < 4; f++) sent.push(r.send(flows[f][k], 20000 + f));
      sent.push(r.send(buildInnerPacket({ family: v6 ? 6 : 4, proto: 17, src: v6 ? '2001:db8::1' : '192.0.2.1', dst: v6 ? '2001:db8::2' : '198.51.100.1', srcPort: 5, dstPort: 53, payload: new Uint8Array(30) }), 20009));
      r.turns();
      // 4 super-packets and the UDP packet, each behind a virtio header.
      const w = r.nat.written.filter((x) => x.dev === r.names.gwi);
      assert.equal(w.length, 5);
      assert.deepEqual(w.map((x) => x.data[1]).sort(), [0, v6 ? 4 : 1, v6 ? 4 : 1, v6 ? 4 : 1, v6 ? 4 : 1].sort());
      assert.equal(r.counters[C.TUN_TX_PACKETS], 61);
      assert.equal(r.ep(EP.RX_PACKETS), 61);
      assert.equal(r.counters[C.TUN_COALESCED], 60);
      assert.equal(r.counters[C.TUN_SUPERS_WRITTEN], 4);
      assert.equal(r.counters[C.TUN_SUPERS_READ], 4);
      assert.equal(r.counters[C.TUN_SEGMENTED], 60);
      assert.equal(r.counters[C.TUN_RX_PACKETS], 61);
      assert.equal(r.counters[C.RAW_TX_PACKETS], 61);
      assert.equal(r.ep(EP.TX_PACKETS), 61);
      assert.equal(r.ep(EP.DROPS), 0);
      // Per flow in order, every packet exactly as sent (the fake does not decrement the TTL).
      const back = r.returned().map((b) => Buffer.from(b).toString('hex'));
      assert.deepEqual([...back].sort(), sent.map((b) => Buffer.from(b).toString('hex')).sort());
      for (let f = 0; f < 4; f++) {
        const mine = back.filter((h) => flows[f].some((p) => h.endsWith(Buffer.from(p).toString('hex'))));
        assert.deepEqual(mine, flows[f].map((p) => mine.find((h) => h.endsWith(Buffer.from(p).toString('hex')))));
      }
    });
  }

  test('a corrupt segment is not merged and goes back as it came; --offload off writes packet by packet', () => {
    for (const offload of [true, false]) {
      const r = new Rig(offload);
      const s = stream({ src: 3, dst: 4, sport: 1234, dport: 80 }, 8, 1000);
      s[4] = s[4].slice();
      s[4][s[4].length - 1] ^= 0x55; // payload changed, checksum not
      const sent = s.map((p) => r.send(p, 30000));
      r.turns();
      assert.deepEqual(r.returned().map((b) => Buffer.from(b).toString('hex')), sent.map((b) => Buffer.from(b).toString('hex')));
      assert.equal(r.nat.written.length, offload ? 3 : 8); // [0..3] merged, [4] alone, [5..7] merged
      assert.equal(r.counters[C.TUN_TX_PACKETS], 8);
    }
  });

  test('a super-packet larger than the free slots fills them and the rest goes in the next batch; nothing is lost or reordered', () => {
    const r = new Rig(true);
    const s = stream({ src: 5, dst: 6, sport: 999, dport: 80 }, 45, 1448);
    r.send(s[0], 30001); // the flow is known
    const udp: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) {
      const p = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.9', dst: '198.51.100.9', srcPort: 100 + i, dstPort: 53, payload: new Uint8Array(20) });
      udp.push(p);
      r.send(p, 31000 + i);
    }
    r.turns();
    r.nat.sent.length = 0;
    for (const p of udp) r.nat.deliver(r.names.gwo, p);
    const units = coalesce(s);
    assert.equal(units.length, 1);
    r.nat.deliverRaw(r.names.gwo, units[0].bytes!);
    r.turns(1);
    const back = r.returned();
    assert.equal(back.length, 85);
    const tcpBack = back.slice(40).map((b) => Buffer.from(b).toString('hex'));
    for (let k = 0; k < 45; k++) assert.ok(tcpBack[k].endsWith(Buffer.from(s[k]).toString('hex')), `segment ${k} exact, in order`);
    assert.equal(r.counters[C.TUN_SEGMENTED], 45);
  });

  // Issue 19: the kernel hands over 64 KiB super-packets whatever their segment count; at a small
  // MSS that is more than a return batch (64). Each tier must return every segment, in order.
  for (const tier of [false, 'uso', true] as const) {
    for (const v6 of [false, true]) {
      test(`a super-packet of more than 64 segments (MSS 500, IPv${v6 ? 6 : 4}), after and before plain packets, comes back whole and in order: ${tier === true ? 'the TAP' : tier === 'uso' ? 'USO' : 'raw'}`, () => {
        const r = new Rig(true, tier);
        const s = stream({ v6, src: 11, dst: 12, sport: 5151, dport: 80, seq: 0xfffff000, id: 0xffc0 }, 130, 500, 220, 0x19);
        r.send(s[0], 30020); // the flow is known
        r.turns();
        r.nat.sent.length = 0;
        r.nat.written.length = 0;
        const units = coalesce(s);
        assert.equal(units.length, 1);
        assert.equal(units[0].members.length, 130);
        const udp = (i: number): Uint8Array => buildInnerPacket({ family: v6 ? 6 : 4, proto: 17, src: v6 ? '2001:db8::9' : '192.0.2.9', dst: v6 ? '2001:db8::8' : '198.51.100.9', srcPort: 200 + i, dstPort: 53, payload: new Uint8Array(20) });
        const before = Array.from({ length: 10 }, (_, i) => udp(i));
        for (let i = 0; i < before.length; i++) r.send(before[i], 31100 + i); // their flows are known
        r.turns();
        r.nat.sent.length = 0;
        r.nat.written.length = 0;
        const tx0 = r.counters[C.RAW_TX_PACKETS];
        const rx0 = r.counters[C.TUN_RX_PACKETS];
        for (const p of before) r.nat.deliver(r.names.gwo, p);
        r.nat.deliverRaw(r.names.gwo, units[0].bytes!);
        r.nat.deliver(r.names.gwo, before[0]);
        r.turns(1);
        assert.equal(r.counters[Drop.GSO_NO_ROOM], 0);
        assert.equal(r.ep(EP.DROPS), 0);
        assert.equal(r.counters[C.TUN_SUPERS_LONG], 1, 'counted as a long super-packet');
        assert.equal(r.counters[C.RAW_TX_PACKETS] - tx0, 141, 'counted in packets');
        assert.equal(r.counters[C.TUN_RX_PACKETS] - rx0, 141);
        if (tier === true) {
          assert.equal(r.nat.written.filter((w) => w.dev === 'gwlbtx0').length, 1, 'one frame: the kernel cuts it');
          assert.equal(r.counters[C.TUN_TAPPED], 130);
          return;
        }
        const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
        const back = r.returned().map(hex);
        const want = [...before, ...s, before[0]].map(hex);
        assert.equal(back.length, want.length);
        for (let k = 0; k < want.length; k++) assert.ok(back[k].endsWith(want[k]), `packet ${k} exact, in order`);
        if (tier === 'uso') {
          assert.equal(r.counters[C.TUN_USO], 130, 'every segment in USO writes');
          assert.equal(r.counters[C.TUN_SUPERS_USO], 1);
        } else {
          assert.equal(r.counters[C.TUN_SEGMENTED], 130);
          assert.equal(r.counters[C.TUN_SUPERS_READ], 1);
        }
      });
    }
  }

  test('unusable virtio headers are dropped under their reason; a partial checksum is completed', () => {
    const r = new Rig(true);
    const seg = buildSeg({ src: 7, dst: 8, sport: 7000, dport: 80, payload: new Uint8Array(100).fill(3) });
    r.send(seg, 30002);
    r.turns();
    r.nat.sent.length = 0;
    const bad = (gso: number, gsoSize: number): Uint8Array => {
      const b = new Uint8Array(10 + seg.length);
      b.set(seg, 10);
      writeVnetHdr(b, 0, VNET_F_NEEDS_CSUM, gso, 40, gsoSize, 20, 16);
      return b;
    };
    r.nat.deliverRaw(r.names.gwo, bad(VNET_GSO_UDP_TUNNEL_IPV4, 50));
    r.nat.deliverRaw(r.names.gwo, bad(VNET_GSO_TCPV4, 0));
    // NEEDS_CSUM without GSO: the checksum field holds the pseudo-header sum; completed here.
    const partial = bad(0, 0);
    const tcpCsum = 10 + 20 + 16;
    const want = [partial[tcpCsum], partial[tcpCsum + 1]];
    let ps = 0;
    for (let i = 12; i < 20; i += 2) ps += (seg[i] << 8) | seg[i + 1];
    ps += 6 + (seg.length - 20);
    while (ps > 0xffff) ps = (ps & 0xffff) + (ps >>> 16);
    partial[tcpCsum] = ps >> 8;
    partial[tcpCsum + 1] = ps & 0xff;
    r.nat.deliverRaw(r.names.gwo, partial);
    r.turns();
    assert.equal(r.counters[Drop.GSO_UNSUPPORTED], 1);
    assert.equal(r.counters[Drop.GSO_MALFORMED], 1);
    assert.equal(r.ep(EP.DROPS), 2);
    const back = r.returned();
    assert.equal(back.length, 1);
    const inner = back[0].subarray(back[0].length - seg.length);
    assert.equal(checkPacket(inner), '');
    assert.deepEqual([inner[36], inner[37]], want);
  });

  test('with UDP tunnel GSO a super-packet goes to the TAP whole: one frame, the flow\'s headers, a header the kernel cuts it by', () => {
    const r = new Rig(true, true);
    const s = stream({ src: 9, dst: 10, sport: 4242, dport: 443 }, 20, 1448);
    const sent = s.map((p) => r.send(p, 30003, 0xabcdef));
    r.turns();
    assert.equal(r.nat.sent.length, 0, 'nothing through the raw socket');
    const frames = r.nat.written.filter((w) => w.dev === 'gwlbtx0');
    assert.equal(frames.length, 1);
    const f = frames[0].data;
    const le = (o: number): number => f[o] | (f[o + 1] << 8);
    const geneveLen = sent[0].length - s[0].length;
    const inner = 24 + 14 + 28 + geneveLen;
    assert.equal(f[0], VNET_F_NEEDS_CSUM);
    assert.equal(f[1], VNET_GSO_TCPV4 | VNET_GSO_UDP_TUNNEL_IPV4);
    assert.equal(le(2), inner - 24 + 40, 'hdr_len: to the end of the inner TCP header');
    assert.equal(le(4), 1448, 'gso_size');
    assert.equal(le(6), inner - 24 + 20, 'csum_start: the inner TCP header');
    assert.equal(le(8), 16);
    assert.equal(le(20), 34, 'outer_th_offset');
    assert.equal(le(22), inner - 24, 'inner_nh_offset');
    assert.deepEqual([...f.subarray(24, 30)], [2, 0x11, 0x22, 0x33, 0x44, 0x55], 'to the TAP\'s own MAC');
    assert.deepEqual([f[36], f[37]], [0x08, 0x00]);
    const o = 38;
    assert.equal(f[o + 8], 65, 'outer TTL 65: forwarding leaves 64');
    assert.equal((f[o + 22] << 8) | f[o + 23], 6081);
    assert.equal((f[o + 20] << 8) | f[o + 21], 30003, 'the port GWLB used for the flow');
    assert.equal((f[o + 2] << 8) | f[o + 3], f.length - o, 'outer IPv4 length');
    assert.deepEqual(f.subarray(o + 28, o + 28 + geneveLen), sent[0].subarray(0, geneveLen), 'the flow\'s Geneve header');
    assert.equal(f.length - inner, 40 + 20 * 1448, 'the whole super-packet');
    assert.equal(r.counters[C.TUN_TAPPED], 20);
    assert.equal(r.counters[C.RAW_TX_PACKETS], 20, 'counted in packets');
    assert.equal(r.ep(EP.TX_PACKETS), 20);
    assert.equal(r.counters[C.TUN_RX_PACKETS], 20);
  });

  // The USO tier: segments cut here as in the raw tier, sent as UDP GSO packets through the USO
  // device (the fake cuts them into datagrams as the kernel does, into `sent`).
  /** One flow per family: a 45-segment super-packet (more than one USO write holds) and a 20-segment
   * one ending short with PSH, returned through a rig of the given tier. */
  function usoWorkload(r: Rig): void {
    const a = stream({ src: 21, dst: 22, sport: 4300, dport: 443, seq: 77, id: 5 }, 45, 1448);
    const b = stream({ v6: true, src: 23, dst: 24, sport: 4301, dport: 443 }, 20, 1448, 300, 0x18);
    for (const p of a) r.send(p, 30010, 0xabc001);
    for (const p of b) r.send(p, 30011, 0xabc002);
    r.turns();
  }
  /** A non-zero outer UDP checksum that verifies. */
  function udpChecksumOk(d: Uint8Array): boolean {
    let s = 17 + d.length - 20;
    for (let i = 12; i < 20; i += 2) s += (d[i] << 8) | d[i + 1];
    for (let i = 20; i < d.length; i += 2) s += (d[i] << 8) | (i + 1 < d.length ? d[i + 1] : 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return ((d[26] << 8) | d[27]) !== 0 && s === 0xffff;
  }
  const outer = (d: Uint8Array): string => Buffer.from([...d.subarray(0, 4), ...d.subarray(6, 10), ...d.subarray(12, 26)]).toString('hex');

  // Issue 19, item 3: the main thread's egress watch (src/control/egress.ts) sets CTRL_TX_RAW when
  // the device towards GWLB would pass the send device's work on unfinished (a veth).
  for (const tier of [true, 'uso'] as const) {
    test(`CTRL_TX_RAW set: the ${tier === 'uso' ? 'USO' : 'tunnel'} tier's super-packets are cut and sent through the raw socket, as the raw tier sends them; cleared: the device again; the new flow's GWLB address in CTRL_GWLB_IP`, () => {
      const raw = new Rig(true);
      usoWorkload(raw);
      const r = new Rig(true, tier);
      assert.equal(r.ctrl[CTRL_GWLB_IP], 0, 'no flow yet');
      r.ctrl[CTRL_TX_RAW] = 1;
      usoWorkload(r);
      assert.ok(r.ctrl[CTRL_GWLB_IP] !== 0, 'the outer source of the new flow');
      assert.equal(r.ctrl[CTRL_GWLB_IP] >>> 0, r.nat.sent[0].dst >>> 0, 'the address the returns go to');
      assert.equal(r.counters[C.TUN_SUPERS_TAPPED] + r.counters[C.TUN_SUPERS_USO], 0, 'nothing through the device');
      assert.equal(r.nat.written.filter((x) => x.dev === 'gwlbtx0').length, 0);
      assert.deepEqual(r.nat.sent.map((s) => Buffer.from(s.data).toString('hex')), raw.nat.sent.map((s) => Buffer.from(s.data).toString('hex')), 'the raw tier\'s datagrams');
      r.ctrl[CTRL_TX_RAW] = 0;
      const before = r.nat.sent.length;
      usoWorkload(r);
      assert.equal(r.counters[C.TUN_SUPERS_TAPPED] + r.counters[C.TUN_SUPERS_USO], 2, 'the device again');
      if (tier === 'uso') assert.equal(r.nat.sent.length - before, 65, 'its datagrams');
    });
  }

  test('USO: the datagrams GWLB gets are those of the raw tier (Geneve header and inner packet byte for byte; outer addresses, ports, lengths, TTL)', () => {
    const raw = new Rig(true);
    usoWorkload(raw);
    const uso = new Rig(true, 'uso');
    usoWorkload(uso);
    assert.equal(raw.nat.sent.length, 65);
    assert.equal(uso.nat.sent.length, 65);
    for (let i = 0; i < 65; i++) {
      const a = raw.nat.sent[i];
      const b = uso.nat.sent[i];
      assert.deepEqual(b.data.subarray(28), a.data.subarray(28), `datagram ${i}: Geneve header and inner packet`);
      assert.equal(outer(b.data), outer(a.data), `datagram ${i}: outer version, length, flags, TTL, protocol, addresses, ports, UDP length`);
      assert.equal(b.dst, a.dst);
      if (i < 64) assert.equal(udpChecksumOk(b.data), true, `datagram ${i}: the UDP checksum the kernel completed from the pseudo-header sum`);
    }
    const w = uso.nat.written.filter((x) => x.dev === 'gwlbtx0');
    assert.equal(w.length, 3, 'two writes for the 45 segments, one for the 19 of the other flow');
    for (const x of w) {
      assert.equal(x.data[1], 5, 'GSO_UDP_L4');
      assert.equal(x.data[10 + 8], 65, 'TTL 65: the kernel forwards it');
    }
    assert.equal(uso.counters[C.TUN_SUPERS_USO], 2);
    // A receive batch is 64 packets: the IPv6 flow's last segment comes alone, a plain packet.
    assert.equal(uso.counters[C.TUN_USO], 64);
    assert.equal(uso.counters[C.TUN_SEGMENTED], 0, 'nothing cut for the raw socket');
    assert.equal(uso.counters[C.TUN_USO_ERRORS], 0);
    assert.equal(uso.counters[C.RAW_TX_PACKETS], 65, 'counted in packets');
    assert.equal(uso.counters[C.RAW_TX_BYTES], raw.counters[C.RAW_TX_BYTES]);
    assert.equal(uso.ep(EP.TX_PACKETS), 65);
    assert.equal(uso.ep(EP.TX_BYTES), raw.ep(EP.TX_BYTES));
    assert.equal(uso.counters[C.TUN_RX_PACKETS], 65);
  });

  for (const failAt of [0, 1]) {
    test(`USO: a failed ${failAt === 0 ? 'first' : 'second'} write sends the rest of the super-packet through the raw socket, once each and in order`, () => {
      const raw = new Rig(true);
      usoWorkload(raw);
      const uso = new Rig(true, 'uso');
      let writes = 0;
      uso.nat.tunFault = (dev) => (dev === 'gwlbtx0' && writes++ === failAt ? 5 : 0);
      usoWorkload(uso);
      assert.deepEqual(uso.nat.sent.map((x) => Buffer.from(x.data.subarray(28)).toString('hex')), raw.nat.sent.map((x) => Buffer.from(x.data.subarray(28)).toString('hex')));
      for (let i = 0; i < 65; i++) assert.equal(outer(uso.nat.sent[i].data), outer(raw.nat.sent[i].data));
      const viaUso = failAt === 0 ? 19 : 42 + 19; // 42 segments fit in the first write
      assert.equal(uso.counters[C.TUN_USO_ERRORS], 1);
      assert.equal(uso.counters[C.TUN_USO], viaUso);
      assert.equal(uso.counters[C.RAW_TX_PACKETS], 65);
      assert.equal(uso.ep(EP.TX_PACKETS), 65);
      assert.equal(uso.ep(EP.DROPS), 0);
    });
  }

  test('USO: a super-packet of 130 segments whose second write (its second chunk) fails: that chunk goes through the raw socket, once each and in order', () => {
    const run = (r: Rig): void => {
      const s = stream({ src: 31, dst: 32, sport: 4400, dport: 443, seq: 5 }, 130, 500);
      r.send(s[0], 30030, 0xabc003);
      r.turns();
      r.nat.sent.length = 0;
      r.nat.deliverRaw(r.names.gwo, coalesce(s)[0].bytes!);
      r.turns(1);
    };
    const raw = new Rig(true);
    run(raw);
    const uso = new Rig(true, 'uso');
    let writes = 0;
    uso.nat.tunFault = (dev) => (dev === 'gwlbtx0' && writes++ === 1 ? 5 : 0);
    run(uso);
    assert.equal(raw.nat.sent.length, 130);
    assert.deepEqual(uso.nat.sent.map((x) => Buffer.from(x.data.subarray(28)).toString('hex')), raw.nat.sent.map((x) => Buffer.from(x.data.subarray(28)).toString('hex')));
    for (let i = 0; i < 130; i++) assert.equal(outer(uso.nat.sent[i].data), outer(raw.nat.sent[i].data));
    assert.equal(uso.counters[C.TUN_USO_ERRORS], 1);
    assert.equal(uso.counters[C.TUN_USO], 64, 'the first chunk');
    assert.equal(uso.counters[C.TUN_SUPERS_LONG], 1);
    assert.equal(uso.ep(EP.DROPS), 0);
  });

  test('random virtio headers and packets from gwo- never break the loop; each is sent or counted', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ flags: fc.nat(3), gso: fc.constantFrom(0, 1, 3, 4, 5, 0x21, 0x81), hdrLen: fc.nat(200), gsoSize: fc.nat(3000), start: fc.nat(80), off: fc.nat(24), segs: fc.integer({ min: 1, max: 50 }), cut: fc.nat(100) }), { minLength: 1, maxLength: 6 }),
        (items) => {
          for (const tap of [false, true, 'uso'] as const) {
            const r = new Rig(true, tap);
            const s = stream({ src: 11, dst: 12, sport: 5555, dport: 80 }, 50, 700);
            r.send(s[0], 30004);
            r.turns();
            r.nat.sent.length = 0;
            const rx0 = r.counters[C.TUN_RX_PACKETS];
            const raw0 = r.counters[C.RAW_TX_PACKETS];
            let drops0 = 0;
            for (const d of Object.values(Drop)) drops0 += r.counters[d];
            let expectMin = 0;
            for (const it of items) {
              const sp = coalesce(s.slice(0, it.segs));
              const body = sp.length === 1 && sp[0].bytes !== undefined ? sp[0].bytes.subarray(10) : s[0];
              const b = new Uint8Array(10 + body.length);
              b.set(body, 10);
              writeVnetHdr(b, 0, it.flags, it.gso, it.hdrLen, it.gsoSize, it.start, it.off);
              r.nat.deliverRaw(r.names.gwo, it.cut > 90 ? b.subarray(0, Math.max(0, b.length - it.cut * 7)) : b);
              expectMin++;
            }
            r.turns();
            let drops = 0;
            for (const d of Object.values(Drop)) drops += r.counters[d];
            const handled = r.counters[C.RAW_TX_PACKETS] - raw0 + drops - drops0;
            assert.ok(handled >= expectMin, `every packet read is sent or counted (${handled} of ${expectMin})`);
            assert.equal(handled, r.counters[C.TUN_RX_PACKETS] - rx0 + r.counters[Drop.GSO_MALFORMED] + r.counters[Drop.GSO_UNSUPPORTED] + r.counters[Drop.GSO_TOO_BIG] + r.counters[Drop.GSO_NO_ROOM]);
            for (const x of r.nat.sent) assert.ok(x.data.length - 28 <= 60 + 8500 + 40, 'no segment over 8500 bytes (plus headers)');
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  test('offload probing falls back per feature on an older kernel', () => {
    const nat = new FakeAddon();
    nat.offloadRefused = TUN_F_USO4 | TUN_F_USO6;
    const fd = nat.tunOpen('gwi-x', true);
    const got = applyOffloads(nat, fd);
    assert.equal(offloadNames(got), 'csum tso4 tso6 tso_ecn');
    nat.offloadRefused = 0;
    assert.equal(offloadNames(applyOffloads(nat, fd)), 'csum tso4 tso6 tso_ecn uso4 uso6');
  });
});
