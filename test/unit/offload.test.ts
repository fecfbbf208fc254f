// TCP offloads in TypeScript (src/wire/offload.ts, src/wire/virtio.ts, src/wire/checksum32.ts):
// which packets coalesce (table of GRO's rules, each with a pair that merges and one that does
// not), that coalesce-then-split gives back the original packets byte for byte (fast-check), and
// that kernel-style super-packets are cut into valid segments (checksums verified by a plain
// reference implementation in src/testkit/tcp.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { onesSum } from '../../src/testkit/checksum';
import { fold16, sumBytes32 } from '../../src/wire/checksum32';
import {
  MAX_INNER,
  SEG_MALFORMED,
  SEG_NO_ROOM,
  SEG_TOO_BIG,
  SEG_UNSUPPORTED,
  Segments,
  TcpCoalescer,
  segmentPacket,
} from '../../src/wire/offload';
import { readPacketCount, tallyDrained } from '../../src/wire/segment';
import { buildInnerPacket } from '../../src/testkit/build';
import {
  VNET_F_NEEDS_CSUM,
  VNET_GSO_ECN,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
  VNET_GSO_UDP,
  VNET_GSO_UDP_L4,
  vnetCsumOffset,
  vnetCsumStart,
  vnetFlags,
  vnetGsoSize,
  vnetGsoType,
  vnetHdrLen,
  writeVnetHdr,
} from '../../src/wire/virtio';
import { SegSpec, buildSeg, checkPacket, hex, pattern, refFold, refSum, stream } from '../../src/testkit/tcp';
import { coalesce, split } from './helpers/offload-harness';
import { COALESCE_MAX_PAYLOAD } from '../../src/wire/coalesce';
import { runOffloadFuzz } from '../fuzz/offload';

const TS_A = new Uint8Array([1, 1, 8, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0]); // NOP NOP timestamps
const TS_B = new Uint8Array([1, 1, 8, 10, 0, 0, 0x10, 1, 0, 0, 0x20, 0]);

function members(units: { members: number[] }[]): number[][] {
  return units.map((u) => u.members);
}

/** Every super-packet splits back (both output forms) into its members, byte for byte. */
function assertRoundTrip(pkts: Uint8Array[], groups?: number[]): number[][] {
  const units = coalesce(pkts, groups);
  const seen = new Set<number>();
  for (const u of units) {
    for (const m of u.members) {
      assert.ok(!seen.has(m), `packet ${m} in two units`);
      seen.add(m);
    }
    if (u.bytes === undefined) continue;
    for (const copy of [true, false]) {
      const segs = split(u.bytes, copy);
      assert.ok(Array.isArray(segs), `split failed: ${String(segs)}`);
      assert.equal(segs.length, u.members.length, 'segment count');
      for (let k = 0; k < segs.length; k++) {
        assert.equal(checkPacket(segs[k]), '', `segment ${k}`);
        assert.equal(hex(segs[k]), hex(pkts[u.members[k]]), `segment ${k} of unit ${u.members} (copy ${copy})`);
      }
    }
  }
  assert.equal(seen.size, pkts.length, 'every packet in a unit');
  return members(units);
}

// ---- checksum32 -------------------------------------------------------------------------------

test('sumBytes32 agrees with onesSum at every length and alignment', () => {
  const b = pattern(3000, 5);
  for (let off = 0; off < 8; off++) {
    for (const len of [0, 1, 2, 3, 4, 5, 7, 8, 9, 20, 21, 1447, 1448, 2999 - off]) {
      assert.equal(fold16(sumBytes32(b, off, len, 77)), refFold(onesSum(b, off, len, 77)), `off ${off} len ${len}`);
    }
  }
  const big = new Uint8Array(70000).fill(0xff);
  assert.equal(fold16(sumBytes32(big, 1, 69999, 0)), refFold(refSum(big, 1, 69999)));
  assert.equal(fold16(sumBytes32(big, 4, 65532, 0)), refFold(refSum(big, 4, 65532)), 'aligned, all ones');
  const zero = new Uint8Array(4096);
  assert.equal(fold16(sumBytes32(zero, 8, 4000, 0)), 0, 'aligned, all zero');
});

test('sumBytes32: the aligned word path agrees with the reference on views at any byte offset', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 64, maxLength: 9100 }), fc.nat(7), fc.nat(64), fc.nat(0x7fff), (data, view, off, sum) => {
      const backing = new Uint8Array(data.length + 80);
      const b = backing.subarray(view);
      b.set(data.subarray(0, Math.min(data.length, b.length - 72)), off);
      const len = Math.min(data.length, b.length - off);
      assert.equal(fold16(sumBytes32(b, off, len, sum)), refFold(refSum(b, off, len, sum)));
    }),
    { numRuns: 300 },
  );
});

// ---- virtio -----------------------------------------------------------------------------------

test('virtio header: written little-endian, read back field by field', () => {
  const b = new Uint8Array(12);
  writeVnetHdr(b, 1, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 | VNET_GSO_ECN, 0x1234, 1448, 20, 16);
  assert.deepEqual([...b.subarray(1, 11)], [1, 0x81, 0x34, 0x12, 0xa8, 0x05, 20, 0, 16, 0]);
  assert.equal(vnetFlags(b, 1), 1);
  assert.equal(vnetGsoType(b, 1), 0x81);
  assert.equal(vnetHdrLen(b, 1), 0x1234);
  assert.equal(vnetGsoSize(b, 1), 1448);
  assert.equal(vnetCsumStart(b, 1), 20);
  assert.equal(vnetCsumOffset(b, 1), 16);
});

// ---- coalescing: the rules, table-driven ------------------------------------------------------

interface Case {
  name: string;
  pkts: (v6: boolean) => Uint8Array[];
  want: number[][];
  groups?: number[];
  v4only?: boolean;
  v6only?: boolean;
}

const seg = (v6: boolean, s: SegSpec): Uint8Array => buildSeg({ v6, ...s });
const P = (n: number, salt = 0): Uint8Array => pattern(n, salt);
/** Segment k of a plain flow with 100-byte segments (seq 1000 + 100k, IPv4 ID 0x1234 + k). */
const S = (v6: boolean, k: number, extra: SegSpec = {}): Uint8Array =>
  seg(v6, { seq: 1000 + 100 * k, id: 0x1234 + k, payload: P(100, k), ...extra });

const cases: Case[] = [
  { name: 'two in-order segments', pkts: (v6) => [S(v6, 0), S(v6, 1)], want: [[0, 1]] },
  { name: 'three, last shorter', pkts: (v6) => [S(v6, 0), S(v6, 1), seg(v6, { seq: 1200, id: 0x1236, payload: P(7) })], want: [[0, 1, 2]] },
  { name: 'a shorter segment ends the unit', pkts: (v6) => [S(v6, 0), seg(v6, { seq: 1100, id: 0x1235, payload: P(50) }), seg(v6, { seq: 1150, id: 0x1236, payload: P(50) })], want: [[0, 1], [2]] },
  { name: 'second longer than the first', pkts: (v6) => [seg(v6, { seq: 1000, payload: P(50) }), seg(v6, { seq: 1050, id: 0x1235, payload: P(100) })], want: [[0], [1]] },
  { name: 'sequence gap', pkts: (v6) => [S(v6, 0), S(v6, 2, { id: 0x1235 })], want: [[0], [1]] },
  { name: 'out of order: never merged, order kept', pkts: (v6) => [S(v6, 1, { id: 0x1234 }), S(v6, 0, { id: 0x1235 }), S(v6, 2, { id: 0x1236 })], want: [[0], [1], [2]] },
  { name: 'retransmission of the same segment', pkts: (v6) => [S(v6, 0), S(v6, 0, { id: 0x1235 })], want: [[0], [1]] },
  { name: 'ACK numbers differ', pkts: (v6) => [S(v6, 0), S(v6, 1, { ack: 5001 })], want: [[0], [1]] },
  { name: 'windows differ', pkts: (v6) => [S(v6, 0), S(v6, 1, { win: 502 })], want: [[0], [1]] },
  { name: 'same timestamps option', pkts: (v6) => [S(v6, 0, { options: TS_A }), S(v6, 1, { options: TS_A })], want: [[0, 1]] },
  { name: 'timestamps differ', pkts: (v6) => [S(v6, 0, { options: TS_A }), S(v6, 1, { options: TS_B })], want: [[0], [1]] },
  { name: 'options on one only', pkts: (v6) => [S(v6, 0, { options: TS_A }), S(v6, 1)], want: [[0], [1]] },
  { name: 'PSH on the last merges and ends the unit', pkts: (v6) => [S(v6, 0), S(v6, 1, { flags: 0x18 }), S(v6, 2)], want: [[0, 1], [2]] },
  { name: 'PSH on the first', pkts: (v6) => [S(v6, 0, { flags: 0x18 }), S(v6, 1)], want: [[0], [1]] },
  { name: 'FIN on the last', pkts: (v6) => [S(v6, 0), S(v6, 1, { flags: 0x11 })], want: [[0, 1]] },
  { name: 'FIN on the first', pkts: (v6) => [S(v6, 0, { flags: 0x11 }), S(v6, 1)], want: [[0], [1]] },
  { name: 'RST', pkts: (v6) => [S(v6, 0), S(v6, 1, { flags: 0x14 })], want: [[0], [1]] },
  { name: 'SYN with data', pkts: (v6) => [S(v6, 0, { flags: 0x12 }), S(v6, 1, { flags: 0x12 })], want: [[0], [1]] },
  { name: 'URG', pkts: (v6) => [S(v6, 0, { flags: 0x30, urg: 5 }), S(v6, 1, { flags: 0x30, urg: 5 })], want: [[0], [1]] },
  { name: 'urgent pointers differ without URG', pkts: (v6) => [S(v6, 0), S(v6, 1, { urg: 9 })], want: [[0], [1]] },
  { name: 'CWR on the first', pkts: (v6) => [S(v6, 0, { flags: 0x90 }), S(v6, 1)], want: [[0, 1]] },
  { name: 'CWR on the second', pkts: (v6) => [S(v6, 0), S(v6, 1, { flags: 0x90 })], want: [[0], [1]] },
  { name: 'ECE on both', pkts: (v6) => [S(v6, 0, { flags: 0x50 }), S(v6, 1, { flags: 0x50 })], want: [[0, 1]] },
  { name: 'ECE on one', pkts: (v6) => [S(v6, 0), S(v6, 1, { flags: 0x50 })], want: [[0], [1]] },
  { name: 'no ACK flag on both', pkts: (v6) => [S(v6, 0, { flags: 0 }), S(v6, 1, { flags: 0 })], want: [[0, 1]] },
  { name: 'TTL / hop limit differs', pkts: (v6) => [S(v6, 0), S(v6, 1, { ttl: 63 })], want: [[0], [1]] },
  { name: 'TOS / traffic class differs (ECN CE)', pkts: (v6) => [S(v6, 0), S(v6, 1, { tos: 3 })], want: [[0], [1]] },
  { name: 'same TOS / traffic class', pkts: (v6) => [S(v6, 0, { tos: 0x2a }), S(v6, 1, { tos: 0x2a })], want: [[0, 1]] },
  { name: 'flow label differs', v6only: true, pkts: (v6) => [S(v6, 0, { flowLabel: 5 }), S(v6, 1, { flowLabel: 6 })], want: [[0], [1]] },
  { name: 'IPv4 ID gap', v4only: true, pkts: (v6) => [S(v6, 0), S(v6, 1, { id: 0x1236 })], want: [[0], [1]] },
  { name: 'IPv4 fixed ID', v4only: true, pkts: (v6) => [S(v6, 0, { id: 0 }), S(v6, 1, { id: 0 })], want: [[0], [1]] },
  { name: 'IPv4 ID wraps', v4only: true, pkts: (v6) => [S(v6, 0, { id: 0xffff }), S(v6, 1, { id: 0 })], want: [[0, 1]] },
  { name: 'IPv4 DF differs', v4only: true, pkts: (v6) => [S(v6, 0), S(v6, 1, { frag: 0 })], want: [[0], [1]] },
  { name: 'IPv4 without DF on both', v4only: true, pkts: (v6) => [S(v6, 0, { frag: 0 }), S(v6, 1, { frag: 0 })], want: [[0, 1]] },
  { name: 'IPv4 options', v4only: true, pkts: (v6) => [S(v6, 0, { ipOptions: new Uint8Array([1, 1, 1, 0]) }), S(v6, 1, { ipOptions: new Uint8Array([1, 1, 1, 0]) })], want: [[0], [1]] },
  { name: 'IPv4 first fragment', v4only: true, pkts: (v6) => [S(v6, 0, { frag: 0x2000 }), S(v6, 1, { frag: 0x2000 })], want: [[0], [1]] },
  { name: 'sequence numbers wrap', pkts: (v6) => [seg(v6, { seq: 0xffffffc0, payload: P(100) }), seg(v6, { seq: 0x24, id: 0x1235, payload: P(100, 1) })], want: [[0, 1]] },
  { name: 'different groups (endpoint or Geneve header)', groups: [0, 1], pkts: (v6) => [S(v6, 0), S(v6, 1)], want: [[0], [1]] },
  { name: 'different ports', pkts: (v6) => [S(v6, 0), S(v6, 1, { sport: 40001 })], want: [[0], [1]] },
  { name: 'different addresses', pkts: (v6) => [S(v6, 0), S(v6, 1, { dst: 9 })], want: [[0], [1]] },
  {
    name: 'interleaved flows merge across the batch',
    pkts: (v6) => [S(v6, 0), S(v6, 0, { sport: 2 }), S(v6, 1), S(v6, 1, { sport: 2 }), S(v6, 2)],
    want: [[0, 2, 4], [1, 3]],
  },
  { name: 'a pure ACK ends the unit (order kept)', pkts: (v6) => [S(v6, 0), seg(v6, { seq: 1100, id: 0x1235 }), S(v6, 1, { id: 0x1236 })], want: [[0], [1], [2]] },
  { name: 'other traffic between does not matter', pkts: (v6) => [S(v6, 0), seg(v6, { udp: true, payload: P(30) }), S(v6, 1)], want: [[0, 2], [1]] },
  {
    name: 'corrupt TCP checksum on the second: alone, and ends the unit',
    pkts: (v6) => {
      const b = S(v6, 1);
      b[b.length - 1] ^= 1;
      return [S(v6, 0), b, S(v6, 2)];
    },
    want: [[0], [1], [2]],
  },
  {
    name: 'corrupt TCP checksum on the first: alone, the rest merges',
    pkts: (v6) => {
      const b = S(v6, 0);
      b[b.length - 1] ^= 1;
      return [b, S(v6, 1), S(v6, 2)];
    },
    want: [[0], [1, 2]],
  },
  {
    name: 'corrupt IPv4 header checksum',
    v4only: true,
    pkts: (v6) => {
      const b = S(v6, 1);
      b[11] ^= 1;
      return [S(v6, 0), b];
    },
    want: [[0], [1]],
  },
  {
    name: 'IP length shorter than the packet (trailing bytes)',
    pkts: (v6) => {
      const b = S(v6, 1);
      const c = new Uint8Array(b.length + 2);
      c.set(b);
      return [S(v6, 0), c];
    },
    want: [[0], [1]],
  },
];

for (const c of cases) {
  for (const v6 of c.v4only ? [false] : c.v6only ? [true] : [false, true]) {
    test(`coalesce ${v6 ? 'IPv6' : 'IPv4'}: ${c.name}`, () => {
      const pkts = c.pkts(v6);
      assert.deepEqual(assertRoundTrip(pkts, c.groups), c.want);
    });
  }
}

test('coalesce: the super-packet and its virtio header', () => {
  for (const v6 of [false, true]) {
    const pkts = stream({ v6, options: TS_A, flags: 0x90 }, 4, 1448, 300, 0x18);
    // CWR only on the first: clear it on the others, as a sender does.
    for (let k = 1; k < 4; k++) pkts[k] = buildSeg({ v6, options: TS_A, seq: 1000 + 1448 * k, id: 0x1234 + k, payload: pattern(k === 3 ? 300 : 1448, k + 1), flags: k === 3 ? 0x18 : 0x10 });
    const units = coalesce(pkts);
    assert.deepEqual(members(units), [[0, 1, 2, 3]]);
    const b = units[0].bytes!;
    const ip = v6 ? 40 : 20;
    assert.equal(vnetFlags(b, 0), VNET_F_NEEDS_CSUM);
    assert.equal(vnetGsoType(b, 0), (v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4) | VNET_GSO_ECN);
    assert.equal(vnetHdrLen(b, 0), ip + 32);
    assert.equal(vnetGsoSize(b, 0), 1448);
    assert.equal(vnetCsumStart(b, 0), ip);
    assert.equal(vnetCsumOffset(b, 0), 16);
    const p = b.slice(10);
    assert.equal(p.length, ip + 32 + 3 * 1448 + 300);
    assert.equal(p[ip + 13], 0x98, 'CWR of the first, PSH of the last');
    // The checksum field holds the pseudo-header sum: completing it as the kernel would gives a
    // valid packet.
    const field = (p[ip + 16] << 8) | p[ip + 17];
    p[ip + 16] = 0;
    p[ip + 17] = 0;
    const pseudo = refFold(v6 ? refSum(p, 8, 32) + 6 + (p.length - ip) : refSum(p, 12, 8) + 6 + (p.length - ip));
    assert.equal(field, pseudo);
    const c = ~refFold(refSum(p, ip, p.length - ip, field)) & 0xffff;
    p[ip + 16] = c >> 8;
    p[ip + 17] = c & 0xff;
    assert.equal(checkPacket(p), '');
  }
});

test('coalesce: a checksum field of 0xffff (the other form of zero) is never merged', () => {
  // Find a payload whose TCP checksum is 0x0000, then write it as 0xffff (equally valid).
  let pkt: Uint8Array | undefined;
  for (let x = 0; x < 65536 * 4 && pkt === undefined; x++) {
    const pay = pattern(100, 1);
    pay[0] = x & 0xff;
    pay[1] = (x >> 8) & 0xff;
    const b = buildSeg({ seq: 1100, id: 0x1235, payload: pay });
    if (b[36] === 0 && b[37] === 0) pkt = b;
  }
  assert.ok(pkt);
  pkt[36] = 0xff;
  pkt[37] = 0xff;
  assert.equal(checkPacket(pkt), '');
  assert.deepEqual(assertRoundTrip([S(false, 0), pkt]), [[0], [1]]);
});

test('coalesce: super-packets stop at 65535 bytes and at the end of the output area', () => {
  const pkts = stream({}, 50, 1448);
  // 52 header bytes + 45 * 1448 = 65212 <= 65535 < 52 + 46 * 1448
  assert.deepEqual(members(coalesce(pkts)).map((m) => m.length), [45, 5]);
  // Room for one super-packet of three segments only.
  const room = 10 + 52 + 3 * 1448;
  assert.deepEqual(members(coalesce(pkts.slice(0, 6), undefined, room)).map((m) => m.length), [3, 1, 1, 1]);
  assert.deepEqual(members(coalesce(pkts.slice(0, 6), undefined, 0)).map((m) => m.length), [1, 1, 1, 1, 1, 1]);
});

test('coalesce: segments above COALESCE_MAX_PAYLOAD pass through unmerged (jumbo MTUs)', () => {
  assert.deepEqual(members(coalesce(stream({}, 4, COALESCE_MAX_PAYLOAD))).map((m) => m.length), [4]);
  assert.deepEqual(members(coalesce(stream({}, 4, COALESCE_MAX_PAYLOAD + 1))).map((m) => m.length), [1, 1, 1, 1]);
  assert.deepEqual(members(coalesce(stream({}, 4, 8448))).map((m) => m.length), [1, 1, 1, 1]);
});

test('coalesce: 12-byte v1 header', () => {
  const units = coalesce(stream({}, 3, 500), undefined, 1 << 16, 12);
  assert.equal(units.length, 1);
  const b = units[0].bytes!;
  assert.equal(b[10] | b[11], 0);
  const segs = split(b, true, 12);
  assert.ok(Array.isArray(segs));
  assert.equal(segs.length, 3);
});

test('coalesce: garbage and truncated packets are units of their own and change nothing', () => {
  const good = stream({}, 2, 200);
  const junk = [new Uint8Array(0), new Uint8Array([0x45]), good[0].slice(0, 30), pattern(60, 3), new Uint8Array(40).fill(0x60)];
  const pkts = [good[0], ...junk, good[1]];
  assert.deepEqual(assertRoundTrip(pkts), [[0, 6], [1], [2], [3], [4], [5]]);
});

// ---- coalesce then split: byte-for-byte (fast-check) ------------------------------------------

const OPTS = [new Uint8Array(0), TS_A, new Uint8Array([2, 4, 5, 0xb4]), new Uint8Array([1, 1, 4, 2, 1, 1, 1, 0])];

interface FlowGen {
  v6: boolean;
  sport: number;
  group: number;
  opt: number;
  mss: number;
  n: number;
  last: number;
  lastFlags: number;
  seq: number;
  id: number;
  tos: number;
}

const flowArb = fc.record({
  v6: fc.boolean(),
  sport: fc.integer({ min: 1, max: 4 }),
  group: fc.integer({ min: 0, max: 1 }),
  opt: fc.integer({ min: 0, max: OPTS.length - 1 }),
  mss: fc.integer({ min: 1, max: 1500 }),
  n: fc.integer({ min: 1, max: 24 }),
  last: fc.integer({ min: 1, max: 1500 }),
  lastFlags: fc.constantFrom(0x10, 0x18, 0x11, 0x19),
  seq: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constant(0xffffff00)),
  id: fc.integer({ min: 0, max: 0xffff }),
  tos: fc.constantFrom(0, 2, 0x28),
});

/** Units the model expects for one clean flow (all its segments mergeable): split only by the
 * 65535-byte bound and after a segment shorter than the MSS or carrying PSH/FIN. */
function modelUnits(f: FlowGen): number[] {
  const hdrs = (f.v6 ? 40 : 20) + 20 + OPTS[f.opt].length;
  const sizes: number[] = [];
  let cur = 0;
  let bytes = 0;
  let closed = false;
  for (let k = 0; k < f.n; k++) {
    const pl = k === f.n - 1 ? Math.min(f.last, f.mss) : f.mss;
    const psh = k === f.n - 1 && (f.lastFlags & 0x09) !== 0;
    if (cur > 0 && !closed && hdrs + bytes + pl <= 65535) {
      cur++;
      bytes += pl;
    } else {
      if (cur > 0) sizes.push(cur);
      cur = 1;
      bytes = pl;
      closed = false;
      if (psh) closed = true; // a PSH/FIN packet cannot start a unit
    }
    if (psh) closed = true;
  }
  sizes.push(cur);
  return sizes;
}

test('coalesce then split gives back every packet byte for byte (fast-check, fixed seed)', () => {
  fc.assert(
    fc.property(
      fc.array(flowArb, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 100 }),
      fc.integer({ min: 0, max: 3 }),
      (flows, order, noise) => {
        // Distinct flows (the same ports twice would be one flow with two sequence spaces).
        const uniq = flows.filter((f, i) => flows.findIndex((g) => g.sport === f.sport && g.v6 === f.v6) === i);
        const per = uniq.map((f) => {
          const pl = Math.min(f.last, f.mss);
          return stream(
            { v6: f.v6, sport: f.sport, options: OPTS[f.opt], seq: f.seq, id: f.id, tos: f.tos },
            f.n,
            f.mss,
            pl,
            f.lastFlags,
          );
        });
        // Interleave, keeping each flow's order; sprinkle unrelated packets.
        const pkts: Uint8Array[] = [];
        const groups: number[] = [];
        const flowOf: number[] = [];
        const pos = per.map(() => 0);
        let oi = 0;
        for (;;) {
          const live = per.map((_, i) => i).filter((i) => pos[i] < per[i].length);
          if (live.length === 0) break;
          const i = live[(order[oi++ % Math.max(1, order.length)] ?? 0) % live.length];
          pkts.push(per[i][pos[i]++]);
          groups.push(uniq[i].group);
          flowOf.push(i);
          if (noise > 0 && pkts.length % (5 + noise) === 0) {
            pkts.push(buildSeg({ udp: true, payload: pattern(20 + noise, noise) }));
            groups.push(0);
            flowOf.push(-1);
          }
        }
        const units = assertRoundTrip(pkts, groups);
        // Each flow's packets leave in their order, in the units the model expects.
        for (let f = 0; f < uniq.length; f++) {
          const mine = units.filter((u) => flowOf[u[0]] === f);
          const flat = mine.flat();
          assert.deepEqual(flat, [...flat].sort((a, b) => a - b), 'flow order kept');
          assert.deepEqual(mine.map((u) => u.length), modelUnits(uniq[f]), 'units of a clean flow');
        }
      },
    ),
    { seed: 0x13, numRuns: 150 },
  );
});

test('coalesce then split with one field of one packet changed: still byte for byte (fast-check)', () => {
  const fields = [4, 8, 9, 1, 6, 22, 24, 28, 30, 32, 33, 34, 36, 38, 40, 45];
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.integer({ min: 2, max: 12 }),
      fc.nat(),
      fc.constantFrom(...fields),
      fc.integer({ min: 1, max: 255 }),
      (v6, n, which, field, x) => {
        const pkts = stream({ v6, options: TS_A }, n, 300);
        const p = pkts[which % n];
        // Change a header byte, then fix the checksums so that only the header rule decides.
        const q = new Uint8Array(p);
        const at = v6 ? field + 20 : field;
        if (at < q.length) q[at] ^= x;
        const ip = v6 ? 40 : 20;
        if (!v6) {
          q[10] = 0;
          q[11] = 0;
          const c = ~refFold(refSum(q, 0, 20)) & 0xffff;
          q[10] = c >> 8;
          q[11] = c & 0xff;
        }
        if (q[v6 ? 6 : 9] === 6 && (q[0] >> 4) === (v6 ? 6 : 4)) {
          q[ip + 16] = 0;
          q[ip + 17] = 0;
          const ps = v6 ? refSum(q, 8, 32) : refSum(q, 12, 8);
          const c = ~refFold(refSum(q, ip, q.length - ip, ps + 6 + q.length - ip)) & 0xffff;
          q[ip + 16] = c >> 8;
          q[ip + 17] = c & 0xff;
        }
        pkts[which % n] = q;
        assertRoundTrip(pkts);
      },
    ),
    { seed: 0x1313, numRuns: 300 },
  );
});

// ---- segmentation of kernel-style super-packets -----------------------------------------------

/** A super-packet as the kernel hands it over: virtio header (hdr_len = everything, as for a
 * forwarded packet), TCP checksum field holding the pseudo-header sum over the whole length. */
function kernelSuper(v6: boolean, payload: number, gso: number, flags: number, opts = TS_A, udp = false): Uint8Array {
  const p = buildSeg({ v6, options: opts, flags, payload: pattern(payload, 9), seq: 0xfffff000, id: 0xfffe, udp });
  const ip = v6 ? 40 : 20;
  const co = ip + (udp ? 6 : 16);
  const ps = refFold((v6 ? refSum(p, 8, 32) : refSum(p, 12, 8)) + (udp ? 17 : 6) + (p.length - ip));
  p[co] = ps >> 8;
  p[co + 1] = ps & 0xff;
  const b = new Uint8Array(10 + p.length);
  const type = udp ? VNET_GSO_UDP_L4 : v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
  writeVnetHdr(b, 0, VNET_F_NEEDS_CSUM, type | (flags & 0x80 ? VNET_GSO_ECN : 0), p.length, gso, ip, udp ? 6 : 16);
  b.set(p, 10);
  return b;
}

function checkSegments(sup: Uint8Array, segs: Uint8Array[], gso: number, udp: boolean): void {
  const p = sup.subarray(10);
  const v6 = p[0] >> 4 === 6;
  const ip = v6 ? 40 : 20;
  const th = udp ? 8 : (p[ip + 12] >> 4) * 4;
  const hl = ip + th;
  const payload = p.subarray(hl);
  assert.equal(segs.length, Math.max(1, Math.ceil(payload.length / gso)));
  let at = 0;
  for (let k = 0; k < segs.length; k++) {
    const s = segs[k];
    assert.equal(checkPacket(s), '', `segment ${k}`);
    assert.ok(s.length <= MAX_INNER && s.length - hl <= gso, 'segment size');
    assert.equal(hex(s.subarray(hl)), hex(payload.subarray(at, at + s.length - hl)), 'payload');
    if (!v6) assert.equal((s[4] << 8) | s[5], (((p[4] << 8) | p[5]) + k) & 0xffff, 'IPv4 ID');
    if (!udp) {
      const seq = ((s[ip + 4] << 24) | (s[ip + 5] << 16) | (s[ip + 6] << 8) | s[ip + 7]) >>> 0;
      const seq0 = ((p[ip + 4] << 24) | (p[ip + 5] << 16) | (p[ip + 6] << 8) | p[ip + 7]) >>> 0;
      assert.equal(seq, (seq0 + at) >>> 0, 'sequence number');
      let f = p[ip + 13];
      if (k > 0) f &= ~0x80;
      if (k < segs.length - 1) f &= ~0x09;
      assert.equal(s[ip + 13], f, 'flags');
      // Everything else of the TCP header as in the super-packet.
      assert.equal(hex(s.subarray(ip + 8, ip + 13)), hex(p.subarray(ip + 8, ip + 13)));
      assert.equal(hex(s.subarray(ip + 14, ip + 16)), hex(p.subarray(ip + 14, ip + 16)));
      assert.equal(hex(s.subarray(ip + 18, hl)), hex(p.subarray(ip + 18, hl)));
    }
    at += s.length - hl;
  }
  assert.equal(at, payload.length);
}

test('split: kernel-style super-packets give valid segments (fast-check, fixed seed)', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 0, max: 30000 }),
      fc.integer({ min: 1, max: 8000 }),
      fc.constantFrom(0x10, 0x18, 0x19, 0x90, 0x99, 0xd8),
      fc.constantFrom(0, 1, 2, 3),
      fc.boolean(),
      (v6, udp, payload0, gso, flags, opt, copy) => {
        const payload = Math.min(payload0, gso * 256); // the harness has 256 slots
        const hl = (v6 ? 40 : 20) + (udp ? 8 : 20 + OPTS[opt].length);
        const segs = split(kernelSuper(v6, payload, gso, flags, OPTS[opt], udp), copy);
        if (hl + Math.min(gso, payload) > MAX_INNER) {
          assert.equal(segs, SEG_TOO_BIG);
          return;
        }
        assert.ok(Array.isArray(segs), `split: ${String(segs)}`);
        checkSegments(kernelSuper(v6, payload, gso, flags, OPTS[opt], udp), segs, gso, udp);
      },
    ),
    { seed: 0x1d, numRuns: 200 },
  );
});

test('split in chunks (issue 19): a super-packet of more segments than the slots, cut a few at a time into the same slots, gives the segments of one cut (fast-check, fixed seed)', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 48, max: 1448 }),
      fc.integer({ min: 1, max: 64 }),
      fc.constantFrom(0x10, 0x18, 0x19, 0x90, 0x99),
      fc.boolean(),
      (v6, udp, gso, chunk, flags, copy) => {
        const hl = (v6 ? 40 : 20) + (udp ? 8 : 20 + TS_A.length);
        const sup = kernelSuper(v6, 65535 - hl, gso, flags, TS_A, udp);
        const whole = split(sup, copy, 10, 1400, gso + 200);
        assert.ok(Array.isArray(whole) && whole.length > 44, `one cut: ${String(whole)}`);
        const chunked = split(sup, copy, 10, chunk, gso + 200, true);
        assert.ok(Array.isArray(chunked));
        assert.equal(chunked.length, whole.length);
        for (let k = 0; k < whole.length; k++) assert.equal(hex(chunked[k]), hex(whole[k]), `segment ${k}`);
        checkSegments(sup, chunked, gso, udp);
      },
    ),
    { seed: 0x19, numRuns: 60 },
  );
});

test('split: odd segment sizes, a single segment, no payload', () => {
  for (const v6 of [false, true]) {
    for (const [payload, gso] of [[5005, 1001], [3, 1], [1448, 1448], [100, 1448], [0, 1448], [4097, 2]] as const) {
      const sup = kernelSuper(v6, payload, gso, 0x99);
      for (const copy of [true, false]) {
        const segs = split(sup, copy, 10, 4096, 200 + Math.min(gso, payload) + 100);
        assert.ok(Array.isArray(segs), `${payload}/${gso}: ${String(segs)}`);
        checkSegments(sup, segs, gso, false);
      }
    }
  }
});

test('split: a non-GSO packet with NEEDS_CSUM gets its checksum completed in place', () => {
  for (const [v6, udp] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const sup = kernelSuper(v6, 333, 1448, 0x18, TS_A, udp);
    sup[1] = 0; // GSO_NONE
    const r = split(sup, true);
    assert.ok(Array.isArray(r) && r.length === 1);
    assert.equal(checkPacket(r[0]), '');
    // Without NEEDS_CSUM the packet is left as it is.
    sup[0] = 0;
    const r2 = split(sup, true);
    assert.ok(Array.isArray(r2));
    assert.equal(hex(r2[0]), hex(sup.subarray(10)));
  }
});

test('split: hdr_len is not trusted, a GSO packet without NEEDS_CSUM still gets full checksums', () => {
  const sup = kernelSuper(false, 4000, 1000, 0x10);
  sup[2] = 3; // hdr_len nonsense
  sup[3] = 0;
  sup[0] = 0;
  sup[10 + 36] ^= 0x55; // junk in the checksum field
  const segs = split(sup, true);
  assert.ok(Array.isArray(segs));
  checkSegments(sup, segs, 1000, false);
});

test('split: what is refused, and why', () => {
  const ok = kernelSuper(false, 4000, 1000, 0x10);
  const mod = (f: (b: Uint8Array) => void, base = ok): Uint8Array => {
    const b = base.slice();
    f(b);
    return b;
  };
  assert.equal(split(mod((b) => (b[4] = b[5] = 0)), true), SEG_MALFORMED, 'gso_size 0');
  assert.equal(split(mod((b) => (b[6] = 21)), true), SEG_MALFORMED, 'csum_start not the TCP header');
  assert.equal(split(mod((b) => (b[8] = 6)), true), SEG_MALFORMED, 'csum_offset not TCP');
  assert.equal(split(mod((b) => (b[1] = VNET_GSO_TCPV6)), true), SEG_MALFORMED, 'TCPV6 on IPv4');
  assert.equal(split(mod((b) => (b[1] = VNET_GSO_UDP)), true), SEG_UNSUPPORTED, 'UFO');
  assert.equal(split(mod((b) => (b[1] = 0x21)), true), SEG_UNSUPPORTED, 'UDP tunnel');
  assert.equal(split(mod((b) => (b[10 + 3] ^= 1)), true), SEG_MALFORMED, 'IP total length');
  assert.equal(split(mod((b) => (b[10 + 6] = 0x20)), true), SEG_MALFORMED, 'fragment');
  assert.equal(split(mod((b) => (b[10 + 9] = 17)), true), SEG_MALFORMED, 'UDP under TCPV4');
  assert.equal(split(mod((b) => (b[10 + 32] = 0x40)), true), SEG_MALFORMED, 'data offset 16 bytes');
  assert.equal(split(mod((b) => (b[10 + 32] = 0xf0), kernelSuper(false, 10, 1000, 0x10)), true), SEG_MALFORMED, 'data offset past the end');
  assert.equal(split(ok.subarray(0, 25), true), SEG_MALFORMED, 'cut short');
  assert.equal(split(ok.subarray(0, 5), true), SEG_MALFORMED, 'shorter than the virtio header');
  assert.equal(split(ok, true, 8), SEG_MALFORMED, 'virtio header length 8');
  assert.equal(split(kernelSuper(false, 20000, 8500, 0x10), true), SEG_TOO_BIG, 'segment over 8500 bytes');
  // Four segments, three slots: the first three (the fourth is cut by a call from 3 on).
  assert.deepEqual(split(ok, true, 10, 3), (split(ok, true) as Uint8Array[]).slice(0, 3), 'four segments, three slots');
  assert.equal(segmentPacket(ok.slice(), 0, ok.length, 10, new Segments(8), 0, 2000, true, 0), SEG_NO_ROOM, 'no slot at all');
  assert.equal(split(ok, true, 10, 8, 1000), SEG_NO_ROOM, 'slots smaller than a segment');
  assert.ok(Array.isArray(split(ok, false, 10, 8, 100)), 'headers-only slots need only the headers');
  const v6ext = mod((b) => (b[10 + 6] = 0), kernelSuper(true, 4000, 1000, 0x10));
  assert.equal(split(v6ext, true), SEG_UNSUPPORTED, 'IPv6 extension header');
  // Output overlapping the packet.
  const buf = new Uint8Array(ok.length + 20000);
  buf.set(ok, 0);
  assert.equal(segmentPacket(buf, 0, ok.length, 10, new Segments(8), 100, 2000, true), SEG_NO_ROOM);
});

// ---- the fuzz target, briefly -----------------------------------------------------------------

test('offload fuzz target: 800 cases with a fixed seed, no invariant violated', () => {
  const r = runOffloadFuzz(0x0ff10ad, 800);
  assert.deepEqual(r.failures, []);
  assert.ok(r.merged > 0 && r.segmented > 0, JSON.stringify(r));
});

test('TcpCoalescer: a batch larger than its capacity is cut to capacity', () => {
  const c = new TcpCoalescer(2);
  const pkts = stream({}, 3, 100);
  const buf = new Uint8Array(4096);
  let at = 0;
  for (let i = 0; i < 2; i++) {
    buf.set(pkts[i], at);
    c.off[i] = at;
    c.len[i] = pkts[i].length;
    at += pkts[i].length;
  }
  assert.equal(c.run(buf, 3, 2048, 2048), 1);
  assert.throws(() => new TcpCoalescer(0), /maxPackets/);
});

test('readPacketCount: a super-packet counts as its segments, anything else as one (a dead worker\'s queues)', () => {
  for (const v6 of [false, true]) {
    for (const [n, mss, last] of [[4, 1448, 300], [2, 1448, 1448], [130, 500, 1]] as const) {
      const pkts = stream({ v6, options: TS_A, flags: 0x10 }, n, mss, last, 0x18);
      const units = coalesce(pkts);
      const b = units[0].bytes!;
      assert.equal(readPacketCount(b, 0, b.length, 10), n, `${n} segments of ${mss} (${v6 ? 'IPv6' : 'IPv4'})`);
    }
    const one = buildSeg({ v6, options: TS_A, payload: pattern(100, 1) });
    const framed = new Uint8Array(10 + one.length);
    framed.set(one, 10);
    assert.equal(readPacketCount(framed, 0, framed.length, 10), 1, 'no GSO: one packet');
    assert.equal(readPacketCount(one, 0, one.length, 0), 1, 'no virtio header: one packet');
  }
  // Headers that cannot be read still count as the one packet they are.
  const bad = new Uint8Array(30);
  writeVnetHdr(bad, 0, 0, VNET_GSO_TCPV4, 0, 1000, 0, 0);
  assert.equal(readPacketCount(bad, 0, bad.length, 10), 1);
});

test('tallyDrained: a dead worker\'s queue: the kernel\'s link-local chatter apart, super-packets as their segments', () => {
  // What the main thread reads from a dead worker's TUN queue. Before issue 18 every read counted
  // as one worker_died packet, the kernel's IPv6 chatter (MLD, router solicitations) included, so
  // returned + counted could exceed what GWLB sent.
  const slot = 70000;
  const buf = new Uint8Array(slot * 4);
  const lens = new Int32Array(4);
  const put = (i: number, p: Uint8Array, vnet: number): void => {
    buf.set(p, i * slot + vnet);
    lens[i] = p.length + vnet;
  };
  const mld = buildInnerPacket({ family: 6, proto: 58, src: '::', dst: 'ff02::16', payload: new Uint8Array(20) });
  const rs = buildInnerPacket({ family: 6, proto: 58, src: 'fe80::1', dst: 'ff02::2', payload: new Uint8Array(8) });
  const v4 = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.1', dst: '198.51.100.1', srcPort: 1, dstPort: 2, payload: new Uint8Array(100) });
  const key = new Uint32Array(11);
  for (const vnet of [0, 10]) {
    buf.fill(0);
    put(0, mld, vnet);
    put(1, v4, vnet);
    put(2, rs, vnet);
    let n = 3;
    if (vnet === 10) {
      const sup = coalesce(stream({ v6: false, options: TS_A, flags: 0x10 }, 130, 500, 1, 0x18))[0].bytes!;
      buf.set(sup, 3 * slot);
      lens[3] = sup.length;
      n = 4;
    }
    const tally = [0, 0];
    tallyDrained(buf, slot, lens, n, vnet, key, tally);
    assert.deepEqual(tally, [vnet === 10 ? 131 : 1, 2], `virtio header ${vnet}: [lost, link-local chatter]`);
  }
});
