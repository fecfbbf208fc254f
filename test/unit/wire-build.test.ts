import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import { InnerSpec, buildInnerPacket, decrementTtl, formatIp, parseIp } from '../../src/testkit/build';
import { foldSum, internetChecksum, onesSum, pseudoHeaderSum } from '../../src/testkit/checksum';

// Independent reference: plain RFC 1071 sum of 16-bit words, folded.
function refSum(parts: number[][]): number {
  let s = 0;
  for (const bytes of parts) {
    for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

/** Splits a built packet: network header bytes, upper-layer bytes, upper protocol, addresses. */
function dissect(p: Uint8Array): { ipHdr: number[]; l4: number[]; proto: number; src: number[]; dst: number[] } {
  if (p[0] >> 4 === 4) {
    const ihl = (p[0] & 15) * 4;
    return { ipHdr: [...p.subarray(0, ihl)], l4: [...p.subarray(ihl)], proto: p[9], src: [...p.subarray(12, 16)], dst: [...p.subarray(16, 20)] };
  }
  let nh = p[6];
  let o = 40;
  while ([0, 43, 60, 135, 139, 140, 51, 44].includes(nh)) {
    const len = nh === 51 ? (p[o + 1] + 2) * 4 : nh === 44 ? 8 : (p[o + 1] + 1) * 8;
    nh = p[o];
    o += len;
  }
  return { ipHdr: [...p.subarray(0, o)], l4: [...p.subarray(o)], proto: nh, src: [...p.subarray(8, 24)], dst: [...p.subarray(24, 40)] };
}

/** Asserts every checksum in a built (unfragmented) packet verifies. */
function assertChecksumsVerify(p: Uint8Array): void {
  const d = dissect(p);
  if (p[0] >> 4 === 4) assert.equal(refSum([d.ipHdr]), 0xffff, 'IPv4 header checksum');
  const len = d.l4.length;
  const pseudo = [...d.src, ...d.dst, 0, d.proto, (len >> 8) & 0xff, len & 0xff, 0, 0].concat([0, 0]);
  // (pseudo-header as 16-bit words: addresses, zero+protocol, length; the extra zeros add nothing)
  if (d.proto === 6 || d.proto === 17 || (d.proto === 58 && p[0] >> 4 === 6)) {
    assert.equal(refSum([pseudo, d.l4]), 0xffff, `proto ${d.proto} checksum`);
  } else if (d.proto === 1 && p[0] >> 4 === 4) {
    assert.equal(refSum([d.l4]), 0xffff, 'ICMP checksum');
  }
}

const payloads = [new Uint8Array(0), new Uint8Array([1]), new Uint8Array([0xff, 0xff, 0xff]), new Uint8Array(1001).map((_, i) => (i * 37) & 0xff)];

describe('buildInnerPacket', () => {
  it('IPv4 TCP: every field', () => {
    const p = buildInnerPacket({
      family: 4, proto: 6, src: '192.0.2.1', dst: '198.51.100.2', srcPort: 1234, dstPort: 80, payload: new Uint8Array([0xaa, 0xbb]),
    });
    assert.equal(p.length, 20 + 20 + 2);
    assert.deepEqual([...p.subarray(0, 10)], [0x45, 0, 0, 42, 0, 0, 0, 0, 64, 6]);
    assert.deepEqual([...p.subarray(12, 20)], [192, 0, 2, 1, 198, 51, 100, 2]);
    const t = p.subarray(20);
    assert.deepEqual([...t.subarray(0, 4)], [0x04, 0xd2, 0, 80]);
    assert.deepEqual([...t.subarray(4, 8)], [0, 0, 0, 1]); // seq default 1
    assert.deepEqual([...t.subarray(8, 12)], [0, 0, 0, 1]); // ack (ACK set)
    assert.equal(t[12], 0x50);
    assert.equal(t[13], 0x18); // ACK|PSH
    assert.deepEqual([...t.subarray(14, 16)], [0xff, 0xff]);
    assert.deepEqual([...t.subarray(20)], [0xaa, 0xbb]);
    assertChecksumsVerify(p);
  });

  it('IPv6 UDP: every field', () => {
    const p = buildInnerPacket({ family: 6, proto: 17, src: '2001:db8::1', dst: '2001:db8::2', srcPort: 53, dstPort: 5353, ttl: 9, payload: new Uint8Array([7]) });
    assert.equal(p.length, 40 + 9);
    assert.deepEqual([...p.subarray(0, 8)], [0x60, 0, 0, 0, 0, 9, 17, 9]);
    assert.deepEqual([...p.subarray(40, 46)], [0, 53, 0x14, 0xe9, 0, 9]);
    assertChecksumsVerify(p);
  });

  it('ICMP and ICMPv6 echo requests', () => {
    const a = buildInnerPacket({ family: 4, proto: 1, src: '192.0.2.1', dst: '192.0.2.2', icmpId: 0x1234, icmpSeq: 5, payload: new Uint8Array([1, 2, 3]) });
    assert.deepEqual([...a.subarray(20, 22)], [8, 0]);
    assert.deepEqual([...a.subarray(24, 28)], [0x12, 0x34, 0, 5]);
    assertChecksumsVerify(a);
    const b = buildInnerPacket({ family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8::2', icmpId: 1, icmpSeq: 2, payload: new Uint8Array(5) });
    assert.deepEqual([...b.subarray(40, 42)], [128, 0]);
    assertChecksumsVerify(b);
  });

  it('checksums verify for every transport, family, payload size, with IPv4 options and IPv6 extension headers', () => {
    for (const payload of payloads) {
      for (const proto of [6, 17, 1, 58, 47]) {
        for (const family of [4, 6] as const) {
          const base: InnerSpec = family === 4
            ? { family, proto, src: '203.0.113.7', dst: '198.51.100.250', srcPort: 65535, dstPort: 1, payload, ipv4Options: new Uint8Array([1, 1, 1, 0]) }
            : { family, proto, src: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', dst: '2001:db8::', srcPort: 65535, dstPort: 1, payload, ipv6ExtHeaders: [{ type: 0 }, { type: 51 }] };
          const p = buildInnerPacket(base);
          assertChecksumsVerify(p);
          assert.equal(dissect(p).proto, proto);
        }
      }
    }
  });

  it('UDP checksum 0 is sent as 0xffff', () => {
    // Search a payload whose UDP checksum computes to 0 (by adjusting the last word).
    const spec: InnerSpec = { family: 4, proto: 17, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 1, dstPort: 2, payload: new Uint8Array(2) };
    const p0 = buildInnerPacket(spec);
    const c0 = (p0[26] << 8) | p0[27];
    // Adding c0 to the data sum makes the checksum ~(~c0 + c0) = 0 (mod one's complement).
    const p = buildInnerPacket({ ...spec, payload: new Uint8Array([c0 >> 8, c0 & 0xff]) });
    assert.deepEqual([...p.subarray(26, 28)], [0xff, 0xff]);
    assertChecksumsVerify(p);
  });

  it('TCP flags, sequence, NS bit', () => {
    const p = buildInnerPacket({ family: 4, proto: 6, src: '192.0.2.1', dst: '192.0.2.2', tcpFlags: 0x102, tcpSeq: 0xfffffffe, payload: new Uint8Array(0) });
    assert.deepEqual([...p.subarray(24, 32)], [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0]); // SYN: no ack number
    assert.equal(p[32], 0x51);
    assert.equal(p[33], 0x02);
    assertChecksumsVerify(p);
  });

  it('IPv4 fragments: ID, MF, offset; non-first fragments carry raw payload', () => {
    const first = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 1, dstPort: 2, payload: new Uint8Array(16), fragment: { offset: 0, more: true, id: 0xbeef } });
    assert.deepEqual([...first.subarray(4, 8)], [0xbe, 0xef, 0x20, 0]);
    assert.equal(first.length, 20 + 8 + 16);
    assert.equal(refSum([[...first.subarray(0, 20)]]), 0xffff);
    const later = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.1', dst: '192.0.2.2', payload: new Uint8Array([9, 9, 9]), fragment: { offset: 0x1fff, more: false, id: 1 } });
    assert.deepEqual([...later.subarray(4, 8)], [0, 1, 0x1f, 0xff]);
    assert.deepEqual([...later.subarray(20)], [9, 9, 9]);
    assert.equal(refSum([[...later.subarray(0, 20)]]), 0xffff);
  });

  it('IPv6 extension headers: chaining, lengths, fragment header last', () => {
    const p = buildInnerPacket({
      family: 6, proto: 6, src: '2001:db8::1', dst: '2001:db8::2', srcPort: 1, dstPort: 2, payload: new Uint8Array(0),
      ipv6ExtHeaders: [{ type: 0, length: 16 }, { type: 43 }, { type: 51, length: 20 }, { type: 60, length: 24 }],
      fragment: { offset: 3, more: true, id: 0x01020304 },
    });
    assert.equal(p[6], 0);
    let o = 40;
    assert.deepEqual([p[o], p[o + 1]], [43, 1]);
    o += 16;
    assert.deepEqual([p[o], p[o + 1], p[o + 2], p[o + 3]], [51, 0, 253, 0]); // routing type 253, segments left 0
    o += 8;
    assert.deepEqual([p[o], p[o + 1]], [60, 3]);
    o += 20;
    assert.deepEqual([p[o], p[o + 1]], [44, 2]);
    o += 24;
    assert.deepEqual([...p.subarray(o, o + 8)], [6, 0, 0, 0x19, 1, 2, 3, 4]); // offset 3 << 3 | M
    o += 8;
    assert.equal(p.length, o); // non-first fragment, empty payload
    assert.equal((p[4] << 8) | p[5], o - 40);
  });

  it('hop-by-hop / destination options bodies are valid TLVs with at most 7 padding bytes in a row', () => {
    for (const length of [8, 16, 24, 56, 264, 272, 2048]) {
      const p = buildInnerPacket({ family: 6, proto: 59, src: '2001:db8::1', dst: '2001:db8::2', payload: new Uint8Array(0), ipv6ExtHeaders: [{ type: 0, length }] });
      let o = 42;
      const end = 40 + length;
      let padRun = 0;
      let count = 0;
      while (o < end) {
        const t = p[o];
        const n = t === 0 ? 1 : 2 + p[o + 1];
        if (t === 0 || t === 1) padRun += n;
        else {
          assert.equal(t >> 6, 0, 'unknown options must have action 00');
          padRun = 0;
          count++;
        }
        assert.ok(padRun <= 7, `padding run ${padRun} in length ${length}`);
        o += n;
      }
      assert.equal(o, end, `options fill exactly (length ${length})`);
      assert.ok(count <= 8, `at most 8 non-padding options (Linux max_hbh_opts_number), got ${count}`);
    }
  });

  it('rejects inconsistent specs', () => {
    const b: InnerSpec = { family: 4, proto: 6, src: '192.0.2.1', dst: '192.0.2.2', payload: new Uint8Array(0) };
    assert.throws(() => buildInnerPacket({ ...b, dst: '2001:db8::1' }), TypeError);
    assert.throws(() => buildInnerPacket({ ...b, family: 6 }), TypeError);
    assert.throws(() => buildInnerPacket({ ...b, ipv4Options: new Uint8Array(3) }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b, ipv4Options: new Uint8Array(44) }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b, ipv6ExtHeaders: [{ type: 0 }] }), TypeError);
    assert.throws(() => buildInnerPacket({ ...b, srcPort: 65536 }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b, proto: 256 }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b, fragment: { offset: 0x2000, more: false, id: 0 } }), RangeError);
    const b6: InnerSpec = { family: 6, proto: 17, src: '2001:db8::1', dst: '2001:db8::2', payload: new Uint8Array(0) };
    assert.throws(() => buildInnerPacket({ ...b6, ipv6ExtHeaders: [{ type: 44 }] }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b6, ipv6ExtHeaders: [{ type: 0, length: 12 }] }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b6, ipv6ExtHeaders: [{ type: 51, length: 8 }] }), RangeError);
    assert.throws(() => buildInnerPacket({ ...b6, ipv4Options: new Uint8Array(4) }), TypeError);
    assert.throws(() => buildInnerPacket({ ...b6, payload: new Uint8Array(65536) }), RangeError);
  });
});

describe('decrementTtl', () => {
  it('IPv4: TTL - 1, checksum fixed, nothing else changed, input untouched', () => {
    for (const ttl of [2, 64, 255]) {
      const p = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.1', dst: '203.0.113.5', srcPort: 1, dstPort: 2, ttl, payload: new Uint8Array(3), ipv4Options: new Uint8Array(4).fill(1) });
      const before = p.slice();
      const q = decrementTtl(p);
      assert.deepEqual(p, before);
      assert.equal(q[8], ttl - 1);
      assert.equal(refSum([[...q.subarray(0, 24)]]), 0xffff);
      for (let i = 0; i < p.length; i++) if (i !== 8 && i !== 10 && i !== 11) assert.equal(q[i], p[i]);
    }
  });

  it('IPv6: hop limit - 1', () => {
    const p = buildInnerPacket({ family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8::2', ttl: 5, payload: new Uint8Array(0) });
    const q = decrementTtl(p);
    assert.equal(q[7], 4);
    assert.deepEqual(q.subarray(8), p.subarray(8));
  });

  it('throws when the packet would not be forwarded or is not IP', () => {
    assert.throws(() => decrementTtl(buildInnerPacket({ family: 4, proto: 1, src: '192.0.2.1', dst: '192.0.2.2', ttl: 1, payload: new Uint8Array(0) })), RangeError);
    assert.throws(() => decrementTtl(buildInnerPacket({ family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8::2', ttl: 0, payload: new Uint8Array(0) })), RangeError);
    assert.throws(() => decrementTtl(new Uint8Array(0)), TypeError);
    assert.throws(() => decrementTtl(new Uint8Array([0x45, 0, 0])), RangeError);
  });

  it('matches the kernel incremental update (RFC 1624 with ip_decrease_ttl carry rule) for random headers', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.integer({ min: 2, max: 255 }), (hdr, ttl) => {
        hdr[0] = 0x45;
        hdr[8] = ttl;
        hdr[10] = 0;
        hdr[11] = 0;
        const c = ~refSum([[...hdr]]) & 0xffff;
        hdr[10] = c >> 8;
        hdr[11] = c & 0xff;
        let k = c + 0x0100; // ip_decrease_ttl: check += htons(0x0100); check + (check >= 0xffff)
        k = (k + (k >= 0xffff ? 1 : 0)) & 0xffff;
        const q = decrementTtl(hdr);
        assert.equal((q[10] << 8) | q[11], k);
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe('parseIp / formatIp', () => {
  it('IPv4 vectors', () => {
    assert.deepEqual(parseIp('192.0.2.1'), { family: 4, bytes: new Uint8Array([192, 0, 2, 1]) });
    assert.deepEqual([...parseIp('0.0.0.0').bytes], [0, 0, 0, 0]);
    assert.deepEqual([...parseIp('255.255.255.255').bytes], [255, 255, 255, 255]);
    assert.equal(formatIp(new Uint8Array([198, 51, 100, 0])), '198.51.100.0');
  });

  it('IPv6 vectors', () => {
    const cases: Array<[string, string]> = [
      ['2001:db8::1', '2001:db8::1'],
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of equal runs
      ['2001:0db8:0001:0000:0001:0000:0001:0001', '2001:db8:1:0:1:0:1:1'], // single zero group not compressed
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['2001:db8::203.0.113.5', '2001:db8::cb00:7105'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ];
    for (const [input, text] of cases) {
      const r = parseIp(input);
      assert.equal(r.family, 6);
      assert.equal(formatIp(r.bytes), text, input);
    }
    assert.deepEqual([...parseIp('2001:db8::1').bytes], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  });

  it('rejects bad addresses', () => {
    const bad = [
      '', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.1.1.1', '1.2.3.-4', '1.2.3.4 ', ' 1.2.3.4', '1.2..3', 'a.b.c.d', '0x1.1.1.1',
      ':', ':::', '1::2::3', ':1::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7::8', '12345::', 'g::',
      '::ffff:1.2.3', '::1.2.3.4:5', '1.2.3.4::', 'fe80::1%eth0', '2001:db8::/32', '::-1',
    ];
    for (const s of bad) {
      assert.throws(() => parseIp(s), TypeError, JSON.stringify(s));
      assert.equal(net.isIP(s) !== 0 && !s.includes('%'), false, `net.isIP disagrees on ${JSON.stringify(s)}`);
    }
    assert.throws(() => formatIp(new Uint8Array(5)), TypeError);
  });

  it('round trips and agrees with Node (WHATWG URL serializer, net.isIP) on random addresses', () => {
    // Words biased towards 0 so that runs of zero groups are common.
    const word = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (words) => {
        const bytes = new Uint8Array(16);
        words.forEach((w, i) => {
          bytes[2 * i] = w >> 8;
          bytes[2 * i + 1] = w & 0xff;
        });
        const text = formatIp(bytes);
        assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
        assert.equal(net.isIPv6(text), true);
        assert.deepEqual(parseIp(text).bytes, bytes);
        // Uncompressed upper-case form parses to the same bytes.
        assert.deepEqual(parseIp(words.map((w) => w.toString(16).toUpperCase().padStart(4, '0')).join(':')).bytes, bytes);
      }),
      { seed: 42, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (bytes) => {
        const text = formatIp(bytes);
        assert.equal(net.isIPv4(text), true);
        assert.deepEqual(parseIp(text), { family: 4, bytes });
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});

describe('checksum helpers', () => {
  it('agree with the reference sum, odd lengths and offsets included', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.nat(), (buf, a, b) => {
        const off = buf.length ? a % buf.length : 0;
        const len = buf.length ? b % (buf.length - off + 1) : 0;
        const ref = refSum([[...buf.subarray(off, off + len)]]);
        assert.equal(foldSum(onesSum(buf, off, len, 0)) % 0xffff, ref % 0xffff);
        assert.equal(internetChecksum(buf, off, len, 0), ~foldSum(onesSum(buf, off, len, 0)) & 0xffff);
      }),
      { seed: 42, numRuns: 1000 },
    );
    assert.equal(foldSum(0x1fffe), 0xffff);
    assert.equal(foldSum(2 ** 40 + 5), 5 + 0x100);
    const src = new Uint8Array([192, 0, 2, 1]);
    const dst = new Uint8Array([192, 0, 2, 2]);
    assert.equal(pseudoHeaderSum(src, dst, 17, 0x12345), 0xc000 + 0x0201 + 0xc000 + 0x0202 + 17 + 1 + 0x2345);
  });
});
