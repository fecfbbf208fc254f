import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KEY_WORDS, MAX_EXT_HEADERS, flowKeyFromIp, isLinkLocal6 } from '../../src/wire/flowkey';
import { InnerSpec, buildInnerPacket, parseIp } from '../../src/testkit/build';

const SENTINEL = 0xabcdef01;

function newKey(): Uint32Array {
  const k = new Uint32Array(KEY_WORDS).fill(0x5a5a5a5a);
  k[0] = SENTINEL;
  return k;
}

/** The key flowKeyFromIp must produce, computed independently from the spec. */
function expectedKey(family: 4 | 6, proto: number, src: string, dst: string, sport: number, dport: number): number[] {
  const words = (s: string): number[] => {
    const b = parseIp(s).bytes;
    const w = [0, 0, 0, 0];
    for (let i = 0; i < b.length; i++) w[i >> 2] = (w[i >> 2] * 256 + b[i]) >>> 0;
    return w;
  };
  return [SENTINEL, (family << 8) | proto, ...words(src), ...words(dst), ((sport * 65536) + dport) >>> 0];
}

function keyOf(pkt: Uint8Array, off = 0, len = pkt.length - off): number[] | null {
  const k = newKey();
  const ok = flowKeyFromIp(pkt, off, len, k);
  assert.equal(k[0], SENTINEL, 'key[0] must not be written');
  return ok ? [...k] : null;
}

const payload = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const v4 = (extra: Partial<InnerSpec>): InnerSpec => ({
  family: 4, proto: 6, src: '192.0.2.10', dst: '198.51.100.20', srcPort: 40001, dstPort: 443, payload, ...extra,
});
const v6 = (extra: Partial<InnerSpec>): InnerSpec => ({
  family: 6, proto: 17, src: '2001:db8::10', dst: '2001:db8:ffff::20', srcPort: 5353, dstPort: 65535, payload, ...extra,
});

describe('flowKeyFromIp: IPv4', () => {
  it('TCP and UDP without options', () => {
    assert.deepEqual(keyOf(buildInnerPacket(v4({}))), expectedKey(4, 6, '192.0.2.10', '198.51.100.20', 40001, 443));
    assert.deepEqual(keyOf(buildInnerPacket(v4({ proto: 17, srcPort: 65535, dstPort: 0 }))), expectedKey(4, 17, '192.0.2.10', '198.51.100.20', 65535, 0));
  });

  it('honours IHL: options shift the ports', () => {
    for (const n of [4, 8, 20, 40]) {
      const opts = new Uint8Array(n).fill(1); // NOPs
      const p = buildInnerPacket(v4({ ipv4Options: opts }));
      assert.equal(p[0] & 0x0f, 5 + n / 4);
      assert.deepEqual(keyOf(p), expectedKey(4, 6, '192.0.2.10', '198.51.100.20', 40001, 443), `options ${n}`);
    }
  });

  it('ICMP and other protocols have ports 0', () => {
    assert.deepEqual(keyOf(buildInnerPacket(v4({ proto: 1, icmpId: 0x1234, icmpSeq: 7 }))), expectedKey(4, 1, '192.0.2.10', '198.51.100.20', 0, 0));
    for (const proto of [0, 47, 50, 132, 255]) {
      assert.deepEqual(keyOf(buildInnerPacket(v4({ proto }))), expectedKey(4, proto, '192.0.2.10', '198.51.100.20', 0, 0), `proto ${proto}`);
    }
  });

  it('high address bytes come out as unsigned words', () => {
    const p = buildInnerPacket(v4({ src: '255.255.255.255', dst: '203.0.113.255' }));
    const k = keyOf(p)!;
    assert.equal(k[2], 0xffffffff);
    assert.equal(k[6], 0xcb0071ff);
    assert.deepEqual(k.slice(3, 6), [0, 0, 0]);
    assert.deepEqual(k.slice(7, 10), [0, 0, 0]);
  });

  it('fragments (first, middle, last) share one key without ports; ID alone is not a fragment', () => {
    const first = buildInnerPacket(v4({ proto: 17, fragment: { offset: 0, more: true, id: 77 } }));
    const middle = buildInnerPacket(v4({ proto: 17, fragment: { offset: 100, more: true, id: 77 } }));
    const last = buildInnerPacket(v4({ proto: 17, fragment: { offset: 200, more: false, id: 77 } }));
    const want = expectedKey(4, 17, '192.0.2.10', '198.51.100.20', 0, 0);
    assert.deepEqual(keyOf(first), want);
    assert.deepEqual(keyOf(middle), want);
    assert.deepEqual(keyOf(last), want);
    const whole = buildInnerPacket(v4({ proto: 17, fragment: { offset: 0, more: false, id: 77 } }));
    assert.deepEqual(keyOf(whole), expectedKey(4, 17, '192.0.2.10', '198.51.100.20', 40001, 443));
    // DF does not make a fragment.
    const df = buildInnerPacket(v4({}));
    df[6] = 0x40;
    assert.notEqual(keyOf(df)![10], 0);
    // A non-first fragment too short to hold ports is still keyed.
    assert.deepEqual(keyOf(buildInnerPacket(v4({ proto: 6, payload: new Uint8Array(0), fragment: { offset: 3, more: false, id: 1 } }))),
      expectedKey(4, 6, '192.0.2.10', '198.51.100.20', 0, 0));
  });

  it('uses the total length: trailing bytes ignored', () => {
    const p = buildInnerPacket(v4({ proto: 17 }));
    const padded = new Uint8Array(p.length + 10);
    padded.set(p);
    assert.deepEqual(keyOf(padded), keyOf(p));
  });

  it('rejects malformed IPv4', () => {
    const p = buildInnerPacket(v4({ ipv4Options: new Uint8Array(8) }));
    // Every strict prefix (total length says more).
    for (let n = 0; n < p.length; n++) assert.equal(keyOf(p, 0, n), null, `prefix ${n}`);
    // IHL < 5.
    for (const ihl of [0, 4]) {
      const q = p.slice();
      q[0] = 0x40 | ihl;
      assert.equal(keyOf(q), null);
    }
    // IHL*4 > total length.
    const bigIhl = buildInnerPacket(v4({ proto: 1, payload: new Uint8Array(0) })); // 28 bytes
    bigIhl[0] = 0x48;
    assert.equal(keyOf(bigIhl), null);
    // Total length < IHL*4.
    const shortTotal = p.slice();
    shortTotal[3] = 27;
    assert.equal(keyOf(shortTotal), null);
    // TCP/UDP too short to hold the ports (total length consistent).
    for (const proto of [6, 17]) {
      const q = buildInnerPacket(v4({ proto: 200, payload: new Uint8Array(3) }));
      q[9] = proto;
      assert.equal(keyOf(q), null, `proto ${proto}`);
      const r = buildInnerPacket(v4({ proto: 200, payload: new Uint8Array(4) }));
      r[9] = proto;
      assert.notEqual(keyOf(r), null);
    }
    // Other versions.
    for (const v of [0, 5, 7, 15]) {
      const q = p.slice();
      q[0] = (v << 4) | 5;
      assert.equal(keyOf(q), null);
    }
  });
});

describe('flowKeyFromIp: IPv6', () => {
  const want = (proto: number, sport: number, dport: number) => expectedKey(6, proto, '2001:db8::10', '2001:db8:ffff::20', sport, dport);

  it('TCP and UDP without extension headers', () => {
    assert.deepEqual(keyOf(buildInnerPacket(v6({}))), want(17, 5353, 65535));
    assert.deepEqual(keyOf(buildInnerPacket(v6({ proto: 6, srcPort: 1, dstPort: 2 }))), want(6, 1, 2));
  });

  it('each extension header type, several lengths', () => {
    const cases: Array<[number, number[]]> = [
      [0, [8, 16, 24, 2048]], [43, [8, 16, 64]], [60, [8, 16, 40]], [135, [8, 16]], [139, [8, 24]], [140, [8, 16]],
      [51, [12, 16, 24, 1028]],
    ];
    for (const [type, lengths] of cases) {
      for (const length of lengths) {
        for (const proto of [6, 17]) {
          const p = buildInnerPacket(v6({ proto, ipv6ExtHeaders: [{ type, length }] }));
          assert.equal(p[6], type);
          assert.deepEqual(keyOf(p), want(proto, 5353, 65535), `type ${type} length ${length} proto ${proto}`);
        }
      }
    }
  });

  it('chains of extension headers', () => {
    const chains = [
      [0, 60, 43, 60, 51],
      [0, 43, 51, 60],
      [51, 51, 60, 135],
      [139, 140, 0],
    ].map((c) => c.map((type) => ({ type })));
    for (const chain of chains) {
      assert.deepEqual(keyOf(buildInnerPacket(v6({ ipv6ExtHeaders: chain }))), want(17, 5353, 65535));
      assert.deepEqual(keyOf(buildInnerPacket(v6({ proto: 58, ipv6ExtHeaders: chain }))), want(58, 0, 0));
    }
  });

  it(`walks at most ${MAX_EXT_HEADERS} extension headers`, () => {
    const chain = (n: number) => Array.from({ length: n }, () => ({ type: 60 }));
    assert.deepEqual(keyOf(buildInnerPacket(v6({ ipv6ExtHeaders: chain(MAX_EXT_HEADERS) }))), want(17, 5353, 65535));
    assert.equal(keyOf(buildInnerPacket(v6({ ipv6ExtHeaders: chain(MAX_EXT_HEADERS + 1) }))), null);
  });

  it('ICMPv6, no-next-header (59), ESP (50) and others have ports 0', () => {
    assert.deepEqual(keyOf(buildInnerPacket(v6({ proto: 58, icmpId: 1, icmpSeq: 2 }))), want(58, 0, 0));
    assert.deepEqual(keyOf(buildInnerPacket(v6({ proto: 59, payload: new Uint8Array(0) }))), want(59, 0, 0));
    assert.deepEqual(keyOf(buildInnerPacket(v6({ proto: 50, ipv6ExtHeaders: [{ type: 0 }] }))), want(50, 0, 0));
    assert.deepEqual(keyOf(buildInnerPacket(v6({ proto: 132 }))), want(132, 0, 0));
  });

  it('fragments: first and non-first share one key without ports; atomic fragment keeps ports', () => {
    const first = buildInnerPacket(v6({ fragment: { offset: 0, more: true, id: 0xfedcba98 } }));
    const middle = buildInnerPacket(v6({ fragment: { offset: 5, more: true, id: 0xfedcba98 } }));
    const last = buildInnerPacket(v6({ fragment: { offset: 9, more: false, id: 0xfedcba98 } }));
    for (const p of [first, middle, last]) assert.deepEqual(keyOf(p), want(17, 0, 0));
    // After other extension headers.
    const chained = buildInnerPacket(v6({ proto: 6, ipv6ExtHeaders: [{ type: 0 }, { type: 43 }], fragment: { offset: 1, more: false, id: 1 } }));
    assert.deepEqual(keyOf(chained), want(6, 0, 0));
    // Atomic fragment: not a fragment.
    const atomic = buildInnerPacket(v6({ fragment: { offset: 0, more: false, id: 5 } }));
    assert.equal(atomic[6], 44);
    assert.deepEqual(keyOf(atomic), want(17, 5353, 65535));
    const atomicChained = buildInnerPacket(v6({ proto: 6, ipv6ExtHeaders: [{ type: 60 }], fragment: { offset: 0, more: false, id: 5 } }));
    assert.deepEqual(keyOf(atomicChained), want(6, 5353, 65535));
    // The fragment header's reserved bits do not make a fragment.
    const reserved = atomic.slice();
    reserved[40 + 3] |= 0x06;
    reserved[40 + 1] = 0xff;
    assert.deepEqual(keyOf(reserved), want(17, 5353, 65535));
    // Protocol of a fragment is the fragment header's next header, even if it is another
    // extension header (later fragments could not be walked further).
    const q = first.slice();
    q[40] = 60;
    assert.deepEqual(keyOf(q), want(60, 0, 0));
  });

  it('uses the payload length: trailing bytes ignored', () => {
    const p = buildInnerPacket(v6({ ipv6ExtHeaders: [{ type: 0 }] }));
    const padded = new Uint8Array(p.length + 9).fill(0xff);
    padded.set(p);
    assert.deepEqual(keyOf(padded), keyOf(p));
  });

  it('rejects malformed IPv6', () => {
    const p = buildInnerPacket(v6({ ipv6ExtHeaders: [{ type: 0 }, { type: 51 }] }));
    for (let n = 0; n < p.length; n++) assert.equal(keyOf(p, 0, n), null, `prefix ${n}`);
    // Extension header length running past the payload length (payload length consistent).
    const q = p.slice();
    q[40 + 1] = 200;
    assert.equal(keyOf(q), null);
    const ah = p.slice();
    ah[48 + 1] = 100;
    assert.equal(keyOf(ah), null);
    // An extension header cut short: payload ends 4 bytes into a hop-by-hop header.
    const cut = buildInnerPacket(v6({ proto: 0, payload: new Uint8Array(4) }));
    assert.equal(keyOf(cut), null);
    // A fragment header cut short.
    const frag = buildInnerPacket(v6({ proto: 44, payload: new Uint8Array(7) }));
    assert.equal(keyOf(frag), null);
    // UDP too short for its ports.
    const udp = buildInnerPacket(v6({ proto: 200, payload: new Uint8Array(3) }));
    udp[6] = 17;
    assert.equal(keyOf(udp), null);
    // Payload length 0 with a hop-by-hop header (jumbogram form).
    const jumbo = buildInnerPacket(v6({ ipv6ExtHeaders: [{ type: 0 }] }));
    jumbo[4] = 0;
    jumbo[5] = 0;
    assert.equal(keyOf(jumbo), null);
  });
});

describe('flowKeyFromIp: properties (fast-check, seed 42)', () => {
  it('random bytes never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -2, max: 10 }), fc.integer({ min: -3, max: 400 }), (buf, off, len) => {
        const k = newKey();
        const r = flowKeyFromIp(buf, off, len, k);
        assert.equal(typeof r, 'boolean');
        assert.equal(k[0], SENTINEL);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it('random bytes behind a version nibble / mutated packets never throw', () => {
    const ext = fc.constantFrom(0, 43, 44, 51, 60, 135, 139, 140, 6, 17, 59);
    fc.assert(
      fc.property(fc.constantFrom(0x45, 0x46, 0x4f, 0x60), ext, fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 300 }), (b0, nh, plen, rest) => {
        const p = new Uint8Array(40 + rest.length);
        p.set(rest, 40);
        p[0] = b0;
        p[2] = plen >> 8;
        p[3] = plen & 0xff;
        p[4] = plen >> 8;
        p[5] = plen & 0xff;
        p[6] = nh;
        p[9] = nh;
        flowKeyFromIp(p, 0, p.length, newKey());
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it('built TCP/UDP packets with random options/extension chains key to their ports', () => {
    const extType = fc.constantFrom(0, 43, 60, 135, 139, 140, 51);
    const spec = fc.record({
      v6: fc.boolean(),
      proto: fc.constantFrom(6, 17),
      sport: fc.integer({ min: 0, max: 65535 }),
      dport: fc.integer({ min: 0, max: 65535 }),
      optWords: fc.integer({ min: 0, max: 10 }),
      chain: fc.array(fc.tuple(extType, fc.integer({ min: 0, max: 4 })), { maxLength: 6 }),
      atomic: fc.boolean(),
      payload: fc.uint8Array({ maxLength: 40 }),
    });
    fc.assert(
      fc.property(spec, (s) => {
        const src = s.v6 ? '2001:db8::1' : '192.0.2.1';
        const dst = s.v6 ? '2001:db8::2' : '203.0.113.2';
        const pkt = buildInnerPacket({
          family: s.v6 ? 6 : 4, proto: s.proto, src, dst, srcPort: s.sport, dstPort: s.dport, payload: s.payload,
          ipv4Options: s.v6 ? undefined : new Uint8Array(s.optWords * 4),
          ipv6ExtHeaders: s.v6 ? s.chain.map(([type, n]) => ({ type, length: type === 51 ? 12 + 4 * n : 8 + 8 * n })) : undefined,
          fragment: s.v6 && s.atomic ? { offset: 0, more: false, id: 9 } : undefined,
        });
        assert.deepEqual(keyOf(pkt), expectedKey(s.v6 ? 6 : 4, s.proto, src, dst, s.sport, s.dport));
      }),
      { seed: 42, numRuns: 1000 },
    );
  });
});

describe('isLinkLocal6: the kernel\'s own IPv6 housekeeping', () => {
  const keyOf = (src: string, dst: string, proto = 58): Uint32Array => {
    const pkt = buildInnerPacket({ family: 6, proto, src, dst, srcPort: 1, dstPort: 2, payload: new Uint8Array(8) });
    const k = new Uint32Array(KEY_WORDS);
    assert.ok(flowKeyFromIp(pkt, 0, pkt.length, k));
    return k;
  };
  it('from fe80::/10 or ::, or to ff02::/16', () => {
    assert.ok(isLinkLocal6(keyOf('fe80::1', '2001:db8::1')));
    assert.ok(isLinkLocal6(keyOf('febf::1', '2001:db8::1')));
    assert.ok(isLinkLocal6(keyOf('::', 'ff02::16')));
    assert.ok(isLinkLocal6(keyOf('2001:db8::1', 'ff02::1', 17)));
  });
  it('not GWLB traffic of any other kind', () => {
    assert.ok(!isLinkLocal6(keyOf('2001:db8::1', '2001:db8::2')));
    assert.ok(!isLinkLocal6(keyOf('fec0::1', '2001:db8::2')));
    assert.ok(!isLinkLocal6(keyOf('2001:db8::1', 'ff05::2')));
    const k = new Uint32Array(KEY_WORDS);
    const v4 = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.1', dst: '198.51.100.1', srcPort: 1, dstPort: 2, payload: new Uint8Array(8) });
    assert.ok(flowKeyFromIp(v4, 0, v4.length, k));
    assert.ok(!isLinkLocal6(k));
  });
});
