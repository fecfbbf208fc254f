import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AWS_OPTION_CLASS,
  GENEVE_HEADER_MAX,
  GENEVE_PORT,
  GeneveInfo,
  GeneveSpec,
  makeGeneveOption,
  parseGeneve,
  writeGeneveHeader,
} from '../../src/wire/geneve';
import { buildInnerPacket, concatBytes, u64Bytes } from '../../src/testkit/build';
import { eniFromHalves } from '../../src/wire/eni';
import { Drop } from '../../src/wire/reasons';

const ENI = 0x2b8ee1d4db0c51c4n;
const ATTACH = 0x0123456789abcdefn;
const COOKIE = 0xdeadbeef;

const V4_INNER = buildInnerPacket({
  family: 4, proto: 17, src: '192.0.2.1', dst: '198.51.100.2', srcPort: 40000, dstPort: 53,
  payload: new Uint8Array([1, 2, 3, 4, 5]),
});
const V6_INNER = buildInnerPacket({
  family: 6, proto: 6, src: '2001:db8::1', dst: '2001:db8::2', srcPort: 40000, dstPort: 443,
  payload: new Uint8Array([9, 8, 7]),
});

const concat = concatBytes;

const u64 = u64Bytes;
function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

const ENI_OPT = makeGeneveOption(AWS_OPTION_CLASS, 1, u64(ENI));
const ATTACH_OPT = makeGeneveOption(AWS_OPTION_CLASS, 2, u64(ATTACH));
const COOKIE_OPT = makeGeneveOption(AWS_OPTION_CLASS, 3, u32(COOKIE));

/** A complete Geneve payload: header from `spec` (defaults: IPv4, VNI 0, the constants above)
 * followed by `inner` (default the IPv4 or IPv6 packet matching the protocol). */
function packet(spec: Partial<GeneveSpec> = {}, inner?: Uint8Array): Uint8Array {
  const full: GeneveSpec = { protocol: 0x0800, eni: ENI, attachment: ATTACH, cookie: COOKIE, ...spec };
  const hdr = new Uint8Array(GENEVE_HEADER_MAX);
  const n = writeGeneveHeader(hdr, 0, full);
  const body = inner ?? (full.protocol === 0x86dd ? V6_INNER : V4_INNER);
  return concat(hdr.subarray(0, n), body);
}

/** Packet whose option area is exactly `opts` (in that order), header built by hand. */
function packetWithOptions(opts: Uint8Array[], protocol = 0x0800, inner?: Uint8Array): Uint8Array {
  const area = concat(...opts);
  assert.equal(area.length % 4, 0);
  const base = new Uint8Array([area.length / 4, 0, protocol >> 8, protocol & 0xff, 0, 0, 7, 0]);
  return concat(base, area, inner ?? (protocol === 0x86dd ? V6_INNER : V4_INNER));
}

function parse(p: Uint8Array, off = 0, len = p.length - off): number {
  return parseGeneve(p, off, len, new GeneveInfo());
}

describe('geneve constants', () => {
  it('has the documented values', () => {
    assert.equal(GENEVE_PORT, 6081);
    assert.equal(AWS_OPTION_CLASS, 0x0108);
    assert.equal(GENEVE_HEADER_MAX, 260);
  });
});

describe('parseGeneve accepts', () => {
  it('a GWLB packet with IPv4 inner, and fills every field', () => {
    const p = packet({ vni: 0xabcdef });
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, p.length, info), 0);
    assert.equal(info.headerLen, 8 + 32);
    assert.equal(info.protocol, 0x0800);
    assert.equal(info.vni, 0xabcdef);
    assert.equal(eniFromHalves(info.eniHi, info.eniLo), ENI);
    assert.equal(info.eniHi, 0x2b8ee1d4);
    assert.equal(info.eniLo, 0xdb0c51c4);
    assert.equal(eniFromHalves(info.attachHi, info.attachLo), ATTACH);
    assert.equal(info.cookie, COOKIE);
    assert.equal(info.innerLen, V4_INNER.length);
    assert.deepEqual(p.subarray(info.headerLen), V4_INNER);
  });

  it('a packet with IPv6 inner', () => {
    const p = packet({ protocol: 0x86dd });
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, p.length, info), 0);
    assert.equal(info.protocol, 0x86dd);
    assert.equal(info.innerLen, V6_INNER.length);
  });

  it('high bits of ENI halves and cookie come out unsigned', () => {
    const p = packet({ eni: 0xffffffffffffffffn, attachment: 0x8000000080000000n, cookie: 0xffffffff });
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, p.length, info), 0);
    assert.equal(info.eniHi, 0xffffffff);
    assert.equal(info.eniLo, 0xffffffff);
    assert.equal(info.attachHi, 0x80000000);
    assert.equal(info.attachLo, 0x80000000);
    assert.equal(info.cookie, 0xffffffff);
  });

  it('the AWS options in any order', () => {
    const orders = [
      [ENI_OPT, ATTACH_OPT, COOKIE_OPT], [ENI_OPT, COOKIE_OPT, ATTACH_OPT], [ATTACH_OPT, ENI_OPT, COOKIE_OPT],
      [ATTACH_OPT, COOKIE_OPT, ENI_OPT], [COOKIE_OPT, ENI_OPT, ATTACH_OPT], [COOKIE_OPT, ATTACH_OPT, ENI_OPT],
    ];
    for (const order of orders) {
      const p = packetWithOptions(order);
      const info = new GeneveInfo();
      assert.equal(parseGeneve(p, 0, p.length, info), 0);
      assert.equal(eniFromHalves(info.eniHi, info.eniLo), ENI);
      assert.equal(eniFromHalves(info.attachHi, info.attachLo), ATTACH);
      assert.equal(info.cookie, COOKIE);
      assert.equal(info.vni, 7);
    }
  });

  it('unknown options (other class, other type of class 0x0108, critical bit set) skipped', () => {
    const unknowns = [
      makeGeneveOption(0x0000, 1, u64(1n)), // other class, type 1
      makeGeneveOption(AWS_OPTION_CLASS, 4, new Uint8Array(12)), // unknown AWS type
      makeGeneveOption(AWS_OPTION_CLASS, 0x81, new Uint8Array(8)), // type 1 with critical bit: not type 1
      makeGeneveOption(0xffff, 0xff, new Uint8Array(124)), // largest option
      makeGeneveOption(0x0109, 3, new Uint8Array(0)), // empty data
    ];
    const p = packetWithOptions([unknowns[0], ENI_OPT, unknowns[1], unknowns[2], ATTACH_OPT, unknowns[3], COOKIE_OPT, unknowns[4]]);
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, p.length, info), 0);
    assert.equal(eniFromHalves(info.eniHi, info.eniLo), ENI);
    assert.equal(info.headerLen, 8 + 12 + 12 + 16 + 12 + 12 + 128 + 8 + 4);
  });

  it('the largest header (63 option words)', () => {
    // 32 bytes of AWS options + 220 bytes of unknown options = 252.
    const filler = concat(makeGeneveOption(0x0200, 1, new Uint8Array(124)), makeGeneveOption(0x0200, 2, new Uint8Array(88)));
    const p = packet({ extraOptions: filler });
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, p.length, info), 0);
    assert.equal(info.headerLen, GENEVE_HEADER_MAX);
  });

  it('trailing bytes after the inner IP total length / payload length', () => {
    assert.equal(parse(packet({}, concat(V4_INNER, new Uint8Array(7)))), 0);
    assert.equal(parse(packet({ protocol: 0x86dd }, concat(V6_INNER, new Uint8Array(3)))), 0);
  });

  it('a packet at an offset inside a larger buffer, ignoring bytes after len', () => {
    const p = packet();
    const buf = new Uint8Array(p.length + 100).fill(0xee);
    buf.set(p, 37);
    const info = new GeneveInfo();
    assert.equal(parseGeneve(buf, 37, p.length, info), 0);
    assert.equal(info.innerLen, V4_INNER.length);
  });

  it('only the bytes that exist when len is larger than the buffer (truncated input)', () => {
    const p = packet({}, concat(V4_INNER, new Uint8Array(10)));
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, p.length + 1000, info), 0);
    assert.equal(info.innerLen, V4_INNER.length + 10);
    // Cut into the IP packet itself: clamped length means a truncated inner packet.
    const q = packet().subarray(0, 40 + 10);
    assert.equal(parse(q, 0, 9999), Drop.INNER_TRUNCATED);
  });
});

describe('parseGeneve rejects, one reason each', () => {
  it('GENEVE_TOO_SHORT: fewer than 8 bytes', () => {
    const p = packet();
    for (let n = 0; n < 8; n++) assert.equal(parse(p, 0, n), Drop.GENEVE_TOO_SHORT, `len ${n}`);
    assert.equal(parse(new Uint8Array(0)), Drop.GENEVE_TOO_SHORT);
    assert.equal(parse(p.subarray(0, 5), 0, 100), Drop.GENEVE_TOO_SHORT); // len clamped to buffer
    assert.equal(parse(p, p.length - 4, 100), Drop.GENEVE_TOO_SHORT);
  });

  it('GENEVE_BAD_VERSION: version bits not 0', () => {
    for (const v of [1, 2, 3]) {
      const p = packet();
      p[0] |= v << 6;
      assert.equal(parse(p), Drop.GENEVE_BAD_VERSION);
    }
  });

  it('GENEVE_BAD_PROTOCOL: protocol type neither 0x0800 nor 0x86DD', () => {
    for (const proto of [0x0000, 0x0806, 0x6558, 0x86de, 0x0008, 0xdd86]) {
      assert.equal(parse(packet({ protocol: proto }, V4_INNER)), Drop.GENEVE_BAD_PROTOCOL, proto.toString(16));
    }
  });

  it('GENEVE_OPTIONS_OVERRUN: option area runs past the end of the packet', () => {
    const p = packet();
    assert.equal(parse(p, 0, 8 + 31), Drop.GENEVE_OPTIONS_OVERRUN); // one byte short of the 32 option bytes
    assert.equal(parse(p, 0, 8), Drop.GENEVE_OPTIONS_OVERRUN);
    const q = packet({}, new Uint8Array(0));
    q[0] = 63; // declares 252 option bytes, has 32
    assert.equal(parse(q), Drop.GENEVE_OPTIONS_OVERRUN);
  });

  it("GENEVE_OPTION_OVERRUN: an option's data runs past the option area", () => {
    const p = packet();
    // Last option (cookie, at 8+12+12) claims 2 data words instead of 1.
    assert.equal(p[8 + 24 + 3], 1);
    p[8 + 24 + 3] = 2;
    assert.equal(parse(p), Drop.GENEVE_OPTION_OVERRUN);
    // An unknown option at the end claiming 31 words.
    const q = packetWithOptions([ENI_OPT, ATTACH_OPT, COOKIE_OPT, new Uint8Array([0x01, 0x00, 0x05, 31])]);
    assert.equal(parse(q), Drop.GENEVE_OPTION_OVERRUN);
    // Option area shrunk so it ends inside the cookie option's data (the rest is now inner bytes).
    const r = packet();
    r[0] = 7;
    assert.equal(parse(r), Drop.GENEVE_OPTION_OVERRUN);
    // Option area ends inside an option header: impossible, since both are multiples of 4 bytes.
  });

  it('GENEVE_DUPLICATE_OPTION: each AWS option twice', () => {
    assert.equal(parse(packetWithOptions([ENI_OPT, ATTACH_OPT, COOKIE_OPT, ENI_OPT])), Drop.GENEVE_DUPLICATE_OPTION);
    assert.equal(parse(packetWithOptions([ENI_OPT, ATTACH_OPT, ATTACH_OPT, COOKIE_OPT])), Drop.GENEVE_DUPLICATE_OPTION);
    assert.equal(parse(packetWithOptions([COOKIE_OPT, ENI_OPT, ATTACH_OPT, COOKIE_OPT])), Drop.GENEVE_DUPLICATE_OPTION);
    // Duplicate checked before the length of the second copy.
    const shortEni = makeGeneveOption(AWS_OPTION_CLASS, 1, new Uint8Array(4));
    assert.equal(parse(packetWithOptions([ENI_OPT, shortEni, ATTACH_OPT, COOKIE_OPT])), Drop.GENEVE_DUPLICATE_OPTION);
  });

  it('GENEVE_BAD_ENI_LENGTH: type 1 data not 8 bytes', () => {
    for (const n of [0, 4, 12, 124]) {
      const bad = makeGeneveOption(AWS_OPTION_CLASS, 1, new Uint8Array(n));
      assert.equal(parse(packet({ omit: [1], extraOptions: bad })), Drop.GENEVE_BAD_ENI_LENGTH, `len ${n}`);
    }
  });

  it('GENEVE_BAD_ATTACHMENT_LENGTH: type 2 data not 8 bytes', () => {
    for (const n of [0, 4, 12]) {
      const bad = makeGeneveOption(AWS_OPTION_CLASS, 2, new Uint8Array(n));
      assert.equal(parse(packet({ omit: [2], extraOptions: bad })), Drop.GENEVE_BAD_ATTACHMENT_LENGTH, `len ${n}`);
    }
  });

  it('GENEVE_BAD_COOKIE_LENGTH: type 3 data not 4 bytes', () => {
    for (const n of [0, 8, 12]) {
      const bad = makeGeneveOption(AWS_OPTION_CLASS, 3, new Uint8Array(n));
      assert.equal(parse(packet({ omit: [3], extraOptions: bad })), Drop.GENEVE_BAD_COOKIE_LENGTH, `len ${n}`);
    }
  });

  it('GENEVE_MISSING_ENI / _ATTACHMENT / _COOKIE', () => {
    assert.equal(parse(packet({ omit: [1] })), Drop.GENEVE_MISSING_ENI);
    assert.equal(parse(packet({ omit: [2] })), Drop.GENEVE_MISSING_ATTACHMENT);
    assert.equal(parse(packet({ omit: [3] })), Drop.GENEVE_MISSING_COOKIE);
    assert.equal(parse(packet({ omit: [1, 2, 3] })), Drop.GENEVE_MISSING_ENI);
    assert.equal(parse(packet({ omit: [2, 3] })), Drop.GENEVE_MISSING_ATTACHMENT);
    // A type-1 option of another class, or with the critical bit, is not the ENI option.
    const lookalikes = concat(makeGeneveOption(0x0109, 1, u64(ENI)), makeGeneveOption(AWS_OPTION_CLASS, 0x81, u64(ENI)));
    assert.equal(parse(packet({ omit: [1], extraOptions: lookalikes })), Drop.GENEVE_MISSING_ENI);
  });

  it('INNER_EMPTY: nothing after the options', () => {
    assert.equal(parse(packet({}, new Uint8Array(0))), Drop.INNER_EMPTY);
    assert.equal(parse(packet(), 0, 40), Drop.INNER_EMPTY);
  });

  it('INNER_VERSION_MISMATCH: first nibble disagrees with the protocol type', () => {
    assert.equal(parse(packet({ protocol: 0x0800 }, V6_INNER)), Drop.INNER_VERSION_MISMATCH);
    assert.equal(parse(packet({ protocol: 0x86dd }, V4_INNER)), Drop.INNER_VERSION_MISMATCH);
    for (const b of [0x00, 0x55, 0xf5]) {
      const inner = V4_INNER.slice();
      inner[0] = b;
      assert.equal(parse(packet({}, inner)), Drop.INNER_VERSION_MISMATCH);
      assert.equal(parse(packet({}, new Uint8Array([b]))), Drop.INNER_VERSION_MISMATCH);
    }
  });

  it('INNER_TRUNCATED: IPv4', () => {
    // Shorter than 20 bytes.
    for (const n of [1, 19]) assert.equal(parse(packet({}, V4_INNER.subarray(0, n))), Drop.INNER_TRUNCATED, `len ${n}`);
    // IHL < 5.
    for (const ihl of [0, 4]) {
      const inner = V4_INNER.slice();
      inner[0] = 0x40 | ihl;
      assert.equal(parse(packet({}, inner)), Drop.INNER_TRUNCATED, `ihl ${ihl}`);
    }
    // IHL*4 > inner length (15*4 = 60 > 33).
    const bigIhl = V4_INNER.slice();
    bigIhl[0] = 0x4f;
    assert.equal(parse(packet({}, bigIhl)), Drop.INNER_TRUNCATED);
    // Total length < IHL*4.
    const shortTotal = V4_INNER.slice();
    shortTotal[2] = 0;
    shortTotal[3] = 19;
    assert.equal(parse(packet({}, shortTotal)), Drop.INNER_TRUNCATED);
    // Total length > inner bytes (packet cut short by one byte).
    assert.equal(parse(packet({}, V4_INNER.subarray(0, V4_INNER.length - 1))), Drop.INNER_TRUNCATED);
  });

  it('INNER_TRUNCATED: IPv6', () => {
    for (const n of [1, 39]) assert.equal(parse(packet({ protocol: 0x86dd }, V6_INNER.subarray(0, n))), Drop.INNER_TRUNCATED, `len ${n}`);
    assert.equal(parse(packet({ protocol: 0x86dd }, V6_INNER.subarray(0, V6_INNER.length - 1))), Drop.INNER_TRUNCATED);
    const inner = V6_INNER.slice();
    inner[4] = 0xff; // payload length 0xff17
    assert.equal(parse(packet({ protocol: 0x86dd }, inner)), Drop.INNER_TRUNCATED);
  });

  it('the first failing check wins', () => {
    // Bad version and bad protocol: version first.
    const p = packet({ protocol: 0x1234 });
    p[0] |= 0x80;
    assert.equal(parse(p), Drop.GENEVE_BAD_VERSION);
    // Missing ENI and an empty inner packet: options first.
    assert.equal(parse(packet({ omit: [1] }, new Uint8Array(0))), Drop.GENEVE_MISSING_ENI);
    // Bad ENI length before a later option overrun.
    const badEni = makeGeneveOption(AWS_OPTION_CLASS, 1, new Uint8Array(4));
    assert.equal(parse(packetWithOptions([badEni, new Uint8Array([0, 0, 0, 31])])), Drop.GENEVE_BAD_ENI_LENGTH);
  });

  it('leaves `out` untouched on a drop', () => {
    const info = new GeneveInfo();
    const good = packet();
    assert.equal(parseGeneve(good, 0, good.length, info), 0);
    const snapshot = { ...info };
    assert.equal(parseGeneve(packet({ omit: [3] }), 0, 60, info), Drop.GENEVE_MISSING_COOKIE);
    assert.deepEqual({ ...info }, snapshot);
  });

  it('odd arguments: negative / NaN / fractional len, bad offsets', () => {
    const p = packet();
    const info = new GeneveInfo();
    assert.equal(parseGeneve(p, 0, -1, info), Drop.GENEVE_TOO_SHORT);
    assert.equal(parseGeneve(p, 0, NaN, info), Drop.GENEVE_TOO_SHORT);
    assert.equal(parseGeneve(p, -1, p.length, info), Drop.GENEVE_TOO_SHORT);
    assert.equal(parseGeneve(p, p.length + 1, 10, info), Drop.GENEVE_TOO_SHORT);
    assert.equal(parseGeneve(p, 0.5, p.length, info), Drop.GENEVE_TOO_SHORT);
    assert.equal(parseGeneve(p, 0, p.length + 0.5, info), 0);
    assert.equal(parseGeneve(p, 0, Infinity, info), 0);
  });
});

describe('writeGeneveHeader', () => {
  it('writes the base header and the AWS options in order 1, 2, 3, then extraOptions', () => {
    const extra = makeGeneveOption(0x0200, 9, new Uint8Array([1, 2, 3, 4]));
    const buf = new Uint8Array(300).fill(0xaa);
    const n = writeGeneveHeader(buf, 3, { protocol: 0x86dd, vni: 0x123456, eni: ENI, attachment: ATTACH, cookie: COOKIE, extraOptions: extra });
    assert.equal(n, 8 + 32 + 8);
    assert.equal(buf[2], 0xaa);
    assert.equal(buf[3 + n], 0xaa);
    const h = buf.subarray(3, 3 + n);
    assert.deepEqual([...h.subarray(0, 8)], [10, 0, 0x86, 0xdd, 0x12, 0x34, 0x56, 0]);
    assert.deepEqual(h.subarray(8, 20), ENI_OPT);
    assert.deepEqual(h.subarray(20, 32), ATTACH_OPT);
    assert.deepEqual(h.subarray(32, 40), COOKIE_OPT);
    assert.deepEqual(h.subarray(40), extra);
    assert.deepEqual([...ENI_OPT.subarray(0, 4)], [0x01, 0x08, 1, 2]);
    assert.deepEqual([...COOKIE_OPT], [0x01, 0x08, 3, 1, 0xde, 0xad, 0xbe, 0xef]);
  });

  it('omits options', () => {
    const buf = new Uint8Array(64);
    assert.equal(writeGeneveHeader(buf, 0, { protocol: 0x0800, eni: 1n, attachment: 2n, cookie: 3, omit: [1, 3] }), 8 + 12);
    assert.equal(buf[0], 3);
    assert.equal(buf[10], 2);
  });

  it('throws on unrepresentable headers', () => {
    const buf = new Uint8Array(400);
    const base: GeneveSpec = { protocol: 0x0800, eni: 1n, attachment: 2n, cookie: 3 };
    assert.throws(() => writeGeneveHeader(buf, 0, { ...base, extraOptions: new Uint8Array(3) }), RangeError);
    assert.throws(() => writeGeneveHeader(buf, 0, { ...base, extraOptions: new Uint8Array(224) }), RangeError); // 256 > 252
    assert.doesNotThrow(() => writeGeneveHeader(buf, 0, { ...base, extraOptions: new Uint8Array(220) }));
    assert.throws(() => writeGeneveHeader(buf, 0, { ...base, eni: -1n }), RangeError);
    assert.throws(() => writeGeneveHeader(buf, 0, { ...base, eni: 1n << 64n }), RangeError);
    assert.throws(() => writeGeneveHeader(buf, 0, { ...base, cookie: 2 ** 32 }), RangeError);
    assert.throws(() => writeGeneveHeader(buf, 0, { ...base, vni: 1 << 24 }), RangeError);
    assert.throws(() => writeGeneveHeader(new Uint8Array(39), 0, base), RangeError);
    assert.throws(() => makeGeneveOption(1, 1, new Uint8Array(128)), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const KNOWN_RESULTS = new Set<number>([
  0, Drop.GENEVE_TOO_SHORT, Drop.GENEVE_BAD_VERSION, Drop.GENEVE_BAD_PROTOCOL, Drop.GENEVE_OPTIONS_OVERRUN,
  Drop.GENEVE_OPTION_OVERRUN, Drop.GENEVE_DUPLICATE_OPTION, Drop.GENEVE_BAD_ENI_LENGTH,
  Drop.GENEVE_BAD_ATTACHMENT_LENGTH, Drop.GENEVE_BAD_COOKIE_LENGTH, Drop.GENEVE_MISSING_ENI,
  Drop.GENEVE_MISSING_ATTACHMENT, Drop.GENEVE_MISSING_COOKIE, Drop.INNER_EMPTY, Drop.INNER_VERSION_MISMATCH,
  Drop.INNER_TRUNCATED,
]);

/** Parses and checks the invariants that hold for any input. */
function checkedParse(buf: Uint8Array, off: number, len: number): number {
  const info = new GeneveInfo();
  const r = parseGeneve(buf, off, len, info);
  assert.ok(KNOWN_RESULTS.has(r), `unknown result ${r}`);
  if (r === 0) {
    const effective = Math.min(len, buf.length - off);
    assert.ok(info.headerLen >= 8 && info.headerLen <= GENEVE_HEADER_MAX && info.headerLen % 4 === 0);
    assert.ok(info.innerLen >= 20);
    assert.equal(info.headerLen + info.innerLen, effective);
    assert.ok(info.protocol === 0x0800 || info.protocol === 0x86dd);
    for (const v of [info.eniHi, info.eniLo, info.attachHi, info.attachLo, info.cookie]) assert.ok(v >= 0 && v <= 0xffffffff && Number.isInteger(v));
    assert.ok(info.vni >= 0 && info.vni <= 0xffffff);
  }
  return r;
}

const unknownOption = fc
  .record({ cls: fc.integer({ min: 0, max: 0xffff }), type: fc.integer({ min: 0, max: 255 }), words: fc.integer({ min: 0, max: 31 }) })
  .filter((o) => !(o.cls === AWS_OPTION_CLASS && o.type >= 1 && o.type <= 3))
  .chain((o) => fc.uint8Array({ minLength: o.words * 4, maxLength: o.words * 4 }).map((data) => makeGeneveOption(o.cls, o.type, data)));

/** Unknown options totalling at most `max` bytes (drops the ones that do not fit). */
function fitOptions(opts: Uint8Array[], max: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let n = 0;
  for (const o of opts) {
    if (n + o.length <= max) {
      out.push(o);
      n += o.length;
    }
  }
  return out;
}

const validPacket = fc
  .record({
    v6: fc.boolean(),
    vni: fc.integer({ min: 0, max: 0xffffff }),
    eni: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    attachment: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    cookie: fc.integer({ min: 0, max: 0xffffffff }),
    unknown: fc.array(unknownOption, { maxLength: 8 }),
    positions: fc.tuple(fc.nat(), fc.nat(), fc.nat()),
    payload: fc.uint8Array({ maxLength: 64 }),
    trailing: fc.nat({ max: 5 }),
  })
  .map((r) => {
    const inner = buildInnerPacket(
      r.v6
        ? { family: 6, proto: 17, src: '2001:db8::a', dst: '2001:db8:1::b', srcPort: 1, dstPort: 2, payload: r.payload }
        : { family: 4, proto: 6, src: '203.0.113.9', dst: '192.0.2.200', srcPort: 3, dstPort: 4, payload: r.payload },
    );
    // AWS options inserted at random positions among the unknown ones.
    const opts = fitOptions(r.unknown, 252 - 32);
    opts.splice(r.positions[0] % (opts.length + 1), 0, makeGeneveOption(AWS_OPTION_CLASS, 1, u64(r.eni)));
    opts.splice(r.positions[1] % (opts.length + 1), 0, makeGeneveOption(AWS_OPTION_CLASS, 2, u64(r.attachment)));
    opts.splice(r.positions[2] % (opts.length + 1), 0, makeGeneveOption(AWS_OPTION_CLASS, 3, u32(r.cookie)));
    const hdr = new Uint8Array(GENEVE_HEADER_MAX);
    const n = writeGeneveHeader(hdr, 0, {
      protocol: r.v6 ? 0x86dd : 0x0800, vni: r.vni, eni: 0n, attachment: 0n, cookie: 0, omit: [1, 2, 3], extraOptions: concat(...opts),
    });
    return { r, headerLen: n, inner, bytes: concat(hdr.subarray(0, n), inner, new Uint8Array(r.trailing)) };
  });

describe('parseGeneve properties (fast-check, seed 42)', () => {
  it('random bytes never throw and give a known result', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: -2, max: 20 }), fc.integer({ min: -5, max: 500 }), (buf, off, len) => {
        checkedParse(buf, off, len);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it('random bytes behind a plausible base header never throw', () => {
    const base = fc.tuple(fc.integer({ min: 0, max: 63 }), fc.constantFrom(0x0800, 0x86dd), fc.uint8Array({ maxLength: 400 }));
    fc.assert(
      fc.property(base, ([optWords, proto, rest]) => {
        const p = concat(new Uint8Array([optWords, 0, proto >> 8, proto & 0xff, 0, 0, 0, 0]), rest);
        checkedParse(p, 0, p.length);
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('build-then-parse round trips (any option order, unknown options, both inner families)', () => {
    fc.assert(
      fc.property(validPacket, ({ r, headerLen, inner, bytes }) => {
        const info = new GeneveInfo();
        assert.equal(parseGeneve(bytes, 0, bytes.length, info), 0);
        assert.equal(info.headerLen, headerLen);
        assert.equal(info.innerLen, inner.length + r.trailing);
        assert.equal(info.protocol, r.v6 ? 0x86dd : 0x0800);
        assert.equal(info.vni, r.vni);
        assert.equal(eniFromHalves(info.eniHi, info.eniLo), r.eni);
        assert.equal(eniFromHalves(info.attachHi, info.attachLo), r.attachment);
        assert.equal(info.cookie, r.cookie);
        checkedParse(bytes, 0, bytes.length);
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('round trips through writeGeneveHeader defaults (AWS options first, then extraOptions)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.integer({ min: 0, max: 0xffffffff }), fc.array(unknownOption, { maxLength: 6 }),
        (eni, attachment, cookie, unknown) => {
          const extraOptions = concat(...fitOptions(unknown, 252 - 32));
          const p = packet({ eni, attachment, cookie, extraOptions });
          const info = new GeneveInfo();
          assert.equal(parseGeneve(p, 0, p.length, info), 0);
          assert.equal(info.headerLen, 40 + extraOptions.length);
          assert.equal(eniFromHalves(info.eniHi, info.eniLo), eni);
          assert.equal(eniFromHalves(info.attachHi, info.attachLo), attachment);
          assert.equal(info.cookie, cookie);
        },
      ),
      { seed: 42, numRuns: 500 },
    );
  });

  it('random mutations and truncations of valid packets never throw and give a known result', () => {
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(validPacket, mutation, fc.nat(), fc.boolean(), ({ bytes }, muts, cut, doCut) => {
        const p = bytes.slice();
        // Mostly mutate the header, where the checks are.
        for (const [i, v] of muts) p[i % Math.min(p.length, 80)] = v;
        checkedParse(p, 0, doCut ? cut % (p.length + 1) : p.length);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });
});
