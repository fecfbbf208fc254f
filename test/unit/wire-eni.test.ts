import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { endpointNames, eniFromBase60, eniFromHalves, eniToBase60, eniToHex } from '../../src/wire/eni';

const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX';

describe('ENI naming', () => {
  it('vectors', () => {
    assert.deepEqual(endpointNames(1n), { gwi: 'gwi-1', gwo: 'gwo-1', hex: '00000000000000001' });
    assert.deepEqual(endpointNames(0xffffffffffffffffn), { gwi: 'gwi-uur953OEv0f', gwo: 'gwo-uur953OEv0f', hex: '0ffffffffffffffff' });
    assert.deepEqual(endpointNames(0x2b8ee1d4db0c51c4n), { gwi: 'gwi-5bqWvzLwwkk', gwo: 'gwo-5bqWvzLwwkk', hex: '02b8ee1d4db0c51c4' });
    assert.equal(eniToBase60(0n), '0');
    assert.equal(eniToHex(0n), '00000000000000000');
    assert.equal(eniToBase60(59n), 'X');
    assert.equal(eniToBase60(60n), '10');
    assert.equal(eniToBase60(3600n), '100');
  });

  it('eniFromHalves', () => {
    assert.equal(eniFromHalves(0x2b8ee1d4, 0xdb0c51c4), 0x2b8ee1d4db0c51c4n);
    assert.equal(eniFromHalves(-1, -1), 0xffffffffffffffffn); // int32 halves taken >>> 0
    assert.equal(eniFromHalves(0, 1), 1n);
  });

  it('rejects values outside 64 bits', () => {
    assert.throws(() => eniToBase60(-1n), RangeError);
    assert.throws(() => eniToHex(1n << 64n), RangeError);
    assert.throws(() => endpointNames(1n << 64n), RangeError);
  });

  it('base 60 decodes back, fits interface names; hex is 17 lower-case digits (fast-check, seed 42)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (eni) => {
        const s = eniToBase60(eni);
        let v = 0n;
        for (const ch of s) v = v * 60n + BigInt(DIGITS.indexOf(ch));
        assert.equal(v, eni);
        assert.ok(s.length <= 11 && (s === '0' || s[0] !== '0'));
        const n = endpointNames(eni);
        assert.ok(n.gwi.length <= 15 && n.gwo.length <= 15);
        assert.match(n.hex, /^[0-9a-f]{17}$/);
        assert.equal(BigInt(`0x${n.hex}`), eni);
        assert.equal(eniFromHalves(Number(eni >> 32n), Number(eni & 0xffffffffn)), eni);
        assert.equal(eniFromBase60(s), eni, 'eniFromBase60 inverts it');
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('eniFromBase60: null for what eniToBase60 never writes (crash leftovers are named gwi-/gwo-<it>)', () => {
    for (const bad of ['', 'Y', 'a-b', '00', '012', 'XXXXXXXXXXX', 'xxxxxxxxxxxx', 'ä']) assert.equal(eniFromBase60(bad), null, bad);
    assert.equal(eniFromBase60('0'), 0n);
    assert.equal(eniFromBase60('15'), 65n);
  });
});
