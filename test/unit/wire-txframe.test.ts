// The UDP tunnel GSO frames of src/wire/txframe.ts, table-driven: which TCP super-packets may go
// whole through the TAP (tapSuperHeaders), how many segments the kernel makes of one
// (tapSegments), and the bytes writeTapFrame puts in front of one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tapSegments, tapSuperHeaders, writeTapFrame, TX_TAP_ETH, TX_TAP_FRONT, TX_TAP_HDR } from '../../src/wire/txframe';
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4, VNET_GSO_UDP_TUNNEL_IPV4 } from '../../src/wire/virtio';

const MTU = 8500;

/** The IPv4 header at b[o] (20 bytes) sums to 0xffff with its checksum. */
function ipv4HeaderOk(b: Uint8Array, o: number): boolean {
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (b[o + i] << 8) | b[o + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

/** The TCP pseudo-header sum (not complemented) of the packet at b[p]: addresses, 6, TCP length. */
function pseudoSum(b: Uint8Array, p: number, n: number): number {
  const v6 = b[p] >> 4 === 6;
  const ip = v6 ? 40 : (b[p] & 15) * 4;
  const from = v6 ? 8 : 12;
  let s = 6 + (n - ip);
  for (let i = from; i < from + (v6 ? 32 : 8); i += 2) s += (b[p + i] << 8) | b[p + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const HMAX = 60;

/** A TCP super-packet: IPv4 (ihl words, flags/fragment field `frag`) or IPv6, TCP header `th`
 * bytes, `payload` bytes; the IP length field says `ipLen` when given. */
function superPacket(o: { v6?: boolean; ihl?: number; th?: number; payload: number; proto?: number; frag?: number; ipLen?: number }): Uint8Array {
  const ip = o.v6 ? 40 : (o.ihl ?? 5) * 4;
  const th = o.th ?? 20;
  const n = ip + th + o.payload;
  const b = new Uint8Array(n);
  if (o.v6) {
    b[0] = 0x60;
    const pl = (o.ipLen ?? n) - 40;
    b[4] = pl >> 8;
    b[5] = pl & 0xff;
    b[6] = o.proto ?? 6;
    b[7] = 64;
    b.set([0x20, 0x01, 0x0d, 0xb8], 8);
    b[23] = 1;
    b.set([0x20, 0x01, 0x0d, 0xb8], 24);
    b[39] = 2;
  } else {
    b[0] = 0x40 | (o.ihl ?? 5);
    const l = o.ipLen ?? n;
    b[2] = l >> 8;
    b[3] = l & 0xff;
    b[6] = (o.frag ?? 0) >> 8;
    b[7] = (o.frag ?? 0) & 0xff;
    b[8] = 64;
    b[9] = o.proto ?? 6;
    b.set([192, 0, 2, 1, 198, 51, 100, 2], 12);
  }
  b[ip + 12] = (th / 4) << 4;
  for (let i = ip + th; i < n; i++) b[i] = i & 0xff;
  return b;
}

test('tapSuperHeaders: which super-packets go whole through the TAP', () => {
  const cases: { name: string; pkt: Uint8Array; gso: number; size: number; want: number }[] = [
    { name: 'IPv4 TCP', pkt: superPacket({ payload: 4000 }), gso: VNET_GSO_TCPV4, size: 1000, want: 40 },
    { name: 'IPv4 TCP, ECN bit', pkt: superPacket({ payload: 4000 }), gso: VNET_GSO_TCPV4 | VNET_GSO_ECN, size: 1000, want: 40 },
    { name: 'IPv4 options, TCP options', pkt: superPacket({ ihl: 6, th: 32, payload: 3000 }), gso: VNET_GSO_TCPV4, size: 1448, want: 56 },
    { name: 'IPv6 TCP', pkt: superPacket({ v6: true, payload: 4000 }), gso: VNET_GSO_TCPV6, size: 1000, want: 60 },
    { name: 'UDP GSO', pkt: superPacket({ payload: 4000 }), gso: VNET_GSO_UDP_L4, size: 1000, want: 0 },
    { name: 'type TCPV6, packet IPv4', pkt: superPacket({ payload: 4000 }), gso: VNET_GSO_TCPV6, size: 1000, want: 0 },
    { name: 'type TCPV4, packet IPv6', pkt: superPacket({ v6: true, payload: 4000 }), gso: VNET_GSO_TCPV4, size: 1000, want: 0 },
    { name: 'IPv4 not TCP', pkt: superPacket({ payload: 4000, proto: 17 }), gso: VNET_GSO_TCPV4, size: 1000, want: 0 },
    { name: 'IPv6 not TCP', pkt: superPacket({ v6: true, payload: 4000, proto: 17 }), gso: VNET_GSO_TCPV6, size: 1000, want: 0 },
    { name: 'IPv4 length disagrees', pkt: superPacket({ payload: 4000, ipLen: 3000 }), gso: VNET_GSO_TCPV4, size: 1000, want: 0 },
    { name: 'IPv6 length disagrees', pkt: superPacket({ v6: true, payload: 4000, ipLen: 100 }), gso: VNET_GSO_TCPV6, size: 1000, want: 0 },
    { name: 'a fragment (offset)', pkt: superPacket({ payload: 4000, frag: 0x0010 }), gso: VNET_GSO_TCPV4, size: 1000, want: 0 },
    { name: 'a fragment (MF)', pkt: superPacket({ payload: 4000, frag: 0x2000 }), gso: VNET_GSO_TCPV4, size: 1000, want: 0 },
    { name: "DF is not a fragment", pkt: superPacket({ payload: 4000, frag: 0x4000 }), gso: VNET_GSO_TCPV4, size: 1000, want: 40 },
    { name: 'gso_size 0', pkt: superPacket({ payload: 4000 }), gso: VNET_GSO_TCPV4, size: 0, want: 0 },
    { name: 'segments over the inner MTU', pkt: superPacket({ payload: 20000 }), gso: VNET_GSO_TCPV4, size: MTU - 39, want: 0 },
    { name: 'segments at the inner MTU', pkt: superPacket({ payload: 20000 }), gso: VNET_GSO_TCPV4, size: MTU - 40, want: 40 },
    { name: 'TCP header below 20', pkt: superPacket({ th: 16, payload: 100 }), gso: VNET_GSO_TCPV4, size: 50, want: 0 },
    { name: 'shorter than 40 bytes', pkt: superPacket({ payload: 0 }).subarray(0, 39), gso: VNET_GSO_TCPV4, size: 10, want: 0 },
    { name: 'a frame over 64 KiB', pkt: superPacket({ payload: 65535 - 28 - HMAX - 40 + 1, ipLen: 0 }), gso: VNET_GSO_TCPV4, size: 1000, want: 0 },
  ];
  for (const c of cases) {
    const b = new Uint8Array(8 + c.pkt.length);
    b.set(c.pkt, 8);
    assert.equal(tapSuperHeaders(b, 8, c.pkt.length, c.gso, c.size, MTU, HMAX), c.want, c.name);
  }
});

test('tapSegments: how many segments the kernel cuts', () => {
  for (const [n, hl, size, want] of [
    [40, 40, 1000, 1],
    [1040, 40, 1000, 1],
    [1041, 40, 1000, 2],
    [4040, 40, 1000, 4],
    [65535, 52, 536, 123],
  ]) assert.equal(tapSegments(n, hl, size), want, `${n} ${hl} ${size}`);
});

test('writeTapFrame: virtio tunnel header, Ethernet, outer IPv4/UDP in front of the Geneve header', () => {
  const mac = new Uint8Array([2, 0x11, 0x22, 0x33, 0x44, 0x55]);
  for (const c of [
    { name: 'IPv4', pkt: superPacket({ payload: 3000 }), gso: VNET_GSO_TCPV4, hl: 40, ip: 20, h: 40 },
    { name: 'IPv4, ECN', pkt: superPacket({ payload: 3000 }), gso: VNET_GSO_TCPV4 | VNET_GSO_ECN, hl: 40, ip: 20, h: 40 },
    { name: 'IPv6', pkt: superPacket({ v6: true, payload: 3000 }), gso: VNET_GSO_TCPV6, hl: 60, ip: 40, h: 24 },
  ]) {
    const p = 200;
    const n = c.pkt.length;
    const b = new Uint8Array(p + n);
    b.set(c.pkt, p);
    for (let i = 0; i < c.h; i++) b[p - c.h + i] = 0xa0 + i; // the flow's Geneve header
    const local = 0xc6120002 | 0;
    const gwlb = 0xc6120001 | 0;
    const vh = writeTapFrame(b, p, n, c.h, c.hl, c.gso, 1000, local, gwlb, 4242, mac);
    assert.equal(vh, p - c.h - TX_TAP_FRONT, c.name);
    // virtio_net_hdr_v1_hash_tunnel
    assert.equal(b[vh], VNET_F_NEEDS_CSUM, c.name);
    assert.equal(b[vh + 1], (c.gso & 0x7f) | (c.gso & VNET_GSO_ECN) | VNET_GSO_UDP_TUNNEL_IPV4, c.name);
    const inner = TX_TAP_ETH + 28 + c.h; // the inner packet from the Ethernet header
    assert.equal(b[vh + 2] | (b[vh + 3] << 8), inner + c.hl, `${c.name}: hdr_len`);
    assert.equal(b[vh + 4] | (b[vh + 5] << 8), 1000, `${c.name}: gso_size`);
    assert.equal(b[vh + 6] | (b[vh + 7] << 8), inner + c.ip, `${c.name}: csum_start`);
    assert.equal(b[vh + 8] | (b[vh + 9] << 8), 16, `${c.name}: csum_offset`);
    assert.deepEqual([...b.subarray(vh + 10, vh + 20)], new Array(10).fill(0), c.name);
    assert.equal(b[vh + 20] | (b[vh + 21] << 8), 34, `${c.name}: outer_th_offset`);
    assert.equal(b[vh + 22] | (b[vh + 23] << 8), inner, `${c.name}: inner_nh_offset`);
    // Ethernet: to the TAP, from a locally administered address, IPv4
    const eth = vh + TX_TAP_HDR;
    assert.deepEqual([...b.subarray(eth, eth + 14)], [...mac, 2, 0, 0, 0, 0, 0, 0x08, 0x00], c.name);
    // Outer IPv4/UDP: TTL 65, a valid checksum, from the port GWLB used to 6081 (docs/protocol.md
    // section 2), length over the rest
    const o = eth + 14;
    assert.equal(b[o + 8], 65, c.name);
    assert.ok(ipv4HeaderOk(b, o), `${c.name}: outer IPv4 checksum`);
    assert.equal((b[o + 2] << 8) | b[o + 3], 28 + c.h + n, c.name);
    assert.deepEqual([...b.subarray(o + 12, o + 20)], [198, 18, 0, 2, 198, 18, 0, 1], c.name);
    assert.equal((b[o + 20] << 8) | b[o + 21], 4242, c.name);
    assert.equal((b[o + 22] << 8) | b[o + 23], 6081, c.name);
    assert.equal((b[o + 24] << 8) | b[o + 25], 8 + c.h + n, c.name);
    // The Geneve header and the inner packet are untouched but for the TCP checksum field.
    for (let i = 0; i < c.h; i++) assert.equal(b[p - c.h + i], 0xa0 + i, c.name);
    const tcsum = p + c.ip + 16;
    for (let i = 0; i < n; i++) if (p + i !== tcsum && p + i !== tcsum + 1) assert.equal(b[p + i], c.pkt[i], `${c.name}: byte ${i}`);
    assert.equal((b[tcsum] << 8) | b[tcsum + 1], pseudoSum(b, p, n), `${c.name}: pseudo-header sum`);
  }
});
