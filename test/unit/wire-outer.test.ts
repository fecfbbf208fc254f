import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../../src/wire/outer';

function refChecksumOk(b: Uint8Array, off: number): boolean {
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

describe('writeOuterIpUdp', () => {
  it('writes every IPv4 and UDP field', () => {
    const buf = new Uint8Array(OUTER_HEADER_LEN + 100).fill(0xaa);
    // 198.18.0.2 -> 198.18.0.1, UDP 40000 -> 6081, 100 payload bytes.
    writeOuterIpUdp(buf, 0, 0xc6120002, 0xc6120001, 40000, 6081, 100);
    assert.equal(OUTER_HEADER_LEN, 28);
    assert.deepEqual([...buf.subarray(0, 10)], [0x45, 0, 0, 128, 0, 0, 0, 0, 64, 17]);
    assert.deepEqual([...buf.subarray(12, 20)], [198, 18, 0, 2, 198, 18, 0, 1]);
    assert.ok(refChecksumOk(buf, 0));
    // Known value: 0x4500+0x0080+0x4011+0xc612+0x0002+0xc612+0x0001 = 0x211b8 -> 0x11ba -> ~ = 0xee45
    assert.deepEqual([...buf.subarray(10, 12)], [0xee, 0x45]);
    assert.deepEqual([...buf.subarray(20, 28)], [0x9c, 0x40, 0x17, 0xc1, 0, 108, 0, 0]);
    assert.equal(buf[28], 0xaa); // payload untouched
  });

  it('writes only [off, off+28) and accepts int32 (negative) addresses', () => {
    const buf = new Uint8Array(80).fill(0x55);
    writeOuterIpUdp(buf, 13, 0xc6130001 | 0, -1, 65535, 0, 8500);
    assert.ok(buf.subarray(0, 13).every((x) => x === 0x55));
    assert.ok(buf.subarray(41).every((x) => x === 0x55));
    assert.deepEqual([...buf.subarray(13 + 12, 13 + 20)], [198, 19, 0, 1, 255, 255, 255, 255]);
    assert.equal((buf[13 + 2] << 8) | buf[13 + 3], 8528);
    assert.equal((buf[13 + 24] << 8) | buf[13 + 25], 8508);
    assert.ok(refChecksumOk(buf, 13));
  });

  it('checksum verifies for random addresses, ports and lengths (fast-check, seed 42)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65507 }), fc.nat({ max: 10 }),
        (src, dst, sp, dp, len, off) => {
          const buf = new Uint8Array(off + 28);
          writeOuterIpUdp(buf, off, src, dst, sp, dp, len);
          assert.ok(refChecksumOk(buf, off));
          assert.equal((buf[off + 2] << 8) | buf[off + 3], 28 + len);
          assert.equal((buf[off + 20] << 8) | buf[off + 21], sp);
          assert.equal((buf[off + 22] << 8) | buf[off + 23], dp);
          assert.equal((buf[off + 24] << 8) | buf[off + 25], 8 + len);
          assert.equal(((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0, src >>> 0);
          assert.equal(((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0, dst >>> 0);
        }),
      { seed: 42, numRuns: 2000 },
    );
  });
});
