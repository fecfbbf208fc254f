// The shared IPv4 header prologue (src/wire/ipv4.ts): the header length from IHL, consistent with
// the total length and the bytes present, for every IHL nibble, total length and length up to 100
// bytes; and the flow key and fragment parsers reject exactly the headers it rejects.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4HeaderLen, ipv4TotalLen } from '../../src/wire/ipv4';
import { flowKeyFromIp, KEY_WORDS } from '../../src/wire/flowkey';
import { fragmentOf, FRAG_NONE, FRAG_LATER, FRAG_WORDS } from '../../src/wire/fragments';

/** A 100-byte buffer holding an IPv4 header: IHL nibble, total length, protocol 50 (ESP: no ports),
 * flags/offset word as given, addresses 192.0.2.1 -> 198.51.100.1. */
function header(ihlNibble: number, total: number, fragWord = 0): Uint8Array {
  const b = new Uint8Array(100);
  b[0] = 0x40 | ihlNibble;
  b[2] = total >> 8;
  b[3] = total & 0xff;
  b[6] = fragWord >> 8;
  b[7] = fragWord & 0xff;
  b[8] = 64;
  b[9] = 50;
  b.set([192, 0, 2, 1], 12);
  b.set([198, 51, 100, 1], 16);
  return b;
}

test('ipv4HeaderLen: IHL * 4 when 20 <= IHL * 4 <= total length <= the bytes present, else 0', () => {
  for (let nib = 0; nib < 16; nib++) {
    for (let total = 0; total <= 100; total++) {
      const b = header(nib, total);
      assert.equal(ipv4TotalLen(b, 0), total);
      for (let len = 20; len <= 100; len++) {
        const ihl = nib * 4;
        const want = ihl >= 20 && total >= ihl && total <= len ? ihl : 0;
        if (ipv4HeaderLen(b, 0, len) !== want) assert.fail(`IHL ${nib}, total ${total}, len ${len}: ${ipv4HeaderLen(b, 0, len)}, want ${want}`);
      }
    }
  }
  // At an offset (a packet behind its Geneve header in a receive slot), options included.
  const slot = new Uint8Array(140);
  slot.set(header(15, 80), 40);
  assert.equal(ipv4HeaderLen(slot, 40, 100), 60);
  assert.equal(ipv4HeaderLen(slot, 40, 79), 0);
});

test('the flow key and fragment parsers reject exactly the IPv4 headers the prologue rejects', () => {
  const key = new Uint32Array(KEY_WORDS);
  const frag = new Uint32Array(FRAG_WORDS);
  for (let nib = 0; nib < 16; nib++) {
    for (const total of [0, 19, 20, 23, 24, 40, 59, 60, 61, 64, 99, 100, 101, 65535]) {
      for (const len of [20, 24, 40, 60, 64, 100]) {
        const ok = ipv4HeaderLen(header(nib, total), 0, len) !== 0;
        assert.equal(flowKeyFromIp(header(nib, total), 0, len, key), ok, `flow key: IHL ${nib}, total ${total}, len ${len}`);
        assert.equal(fragmentOf(header(nib, total, 0x0010), 0, len, frag), ok ? FRAG_LATER : FRAG_NONE, `fragment: IHL ${nib}, total ${total}, len ${len}`);
      }
    }
  }
});
