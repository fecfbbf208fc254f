// The USO packet header (src/wire/uso.ts): the virtio header the kernel cuts a UDP GSO packet by,
// the outer IPv4/UDP header as the raw path writes it (but TTL 65 and the UDP checksum field), and
// a checksum field from which the kernel's per-datagram completion gives valid UDP checksums.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { USO_HDR_LEN, USO_MAX_PAYLOAD, writeUsoHeader } from '../../src/wire/uso';
import { writeOuterIpUdp } from '../../src/wire/outer';
import { ip4FromString } from '../../src/io/native';

const SRC = ip4FromString('198.18.0.2');
const DST = ip4FromString('198.19.255.1');
const le = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
const be = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];

function sum(b: Uint8Array, off: number, len: number, init = 0): number {
  let s = init;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The datagrams the kernel makes of a USO packet (vnet header at 0): the header copied, lengths,
 * the checksum field moved from the whole UDP length to the datagram's and completed. */
function cut(pkt: Uint8Array): Uint8Array[] {
  const gso = pkt[1] === 5 ? le(pkt, 4) : pkt.length - USO_HDR_LEN;
  const whole = be(pkt, 10 + 24);
  const out: Uint8Array[] = [];
  for (let at = USO_HDR_LEN; at < pkt.length; at += gso) {
    const n = Math.min(gso, pkt.length - at);
    const d = new Uint8Array(28 + n);
    d.set(pkt.subarray(10, USO_HDR_LEN));
    d.set(pkt.subarray(at, at + n), 28);
    d[24] = (8 + n) >> 8;
    d[25] = (8 + n) & 0xff;
    const adj = sum(d, 0, 0, be(d, 26) + (~whole & 0xffff) + 8 + n);
    d[26] = adj >> 8;
    d[27] = adj & 0xff;
    const c = ~sum(d, 20, 8 + n) & 0xffff;
    d[26] = c >> 8;
    d[27] = c & 0xff;
    out.push(d);
  }
  return out;
}

describe('USO header (writeUsoHeader)', () => {
  test('virtio header: NEEDS_CSUM, GSO_UDP_L4, hdr_len 28, gso_size, csum at the UDP header + 6', () => {
    const b = new Uint8Array(USO_HDR_LEN + 3000);
    writeUsoHeader(b, 0, SRC, DST, 40001, 6081, 3000, 1200);
    assert.deepEqual([b[0], b[1], le(b, 2), le(b, 4), le(b, 6), le(b, 8)], [1, 5, 28, 1200, 20, 6]);
    const ref = new Uint8Array(28);
    writeOuterIpUdp(ref, 0, SRC, DST, 40001, 6081, 3000);
    const ip = b.subarray(10, 38);
    assert.equal(ip[8], 65, 'TTL 65: forwarded once');
    assert.equal(sum(ip, 0, 20), 0xffff, 'a valid IPv4 header checksum');
    for (const [i, what] of [[0, 'version/IHL'], [1, 'TOS'], [2, 'total length'], [3, 'total length'], [4, 'ID'], [5, 'ID'], [6, 'flags'], [7, 'fragment offset'], [9, 'protocol']] as const) assert.equal(ip[i], ref[i], what);
    assert.deepEqual(ip.subarray(12, 26), ref.subarray(12, 26), 'addresses, ports, UDP length: as for one raw datagram');
    assert.equal(be(ip, 2), 28 + 3000);
  });

  test('a single datagram (payload <= gso_size) is no GSO packet: only the checksum is left to the kernel', () => {
    const b = new Uint8Array(USO_HDR_LEN + 100);
    writeUsoHeader(b, 0, SRC, DST, 1, 6081, 100, 100);
    assert.deepEqual([b[0], b[1], le(b, 4), le(b, 6), le(b, 8)], [1, 0, 0, 20, 6]);
  });

  test('writes only its 38 bytes, at any offset', () => {
    const b = new Uint8Array(200).fill(0xee);
    writeUsoHeader(b, 50, SRC, DST, 7, 6081, 1000, 100);
    assert.ok(b.subarray(0, 50).every((x) => x === 0xee));
    assert.ok(b.subarray(50 + USO_HDR_LEN).every((x) => x === 0xee));
  });

  test('property: every datagram the kernel cuts from it carries a valid UDP checksum and its own lengths', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 1, max: 40 }), fc.nat(9000), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 0xffffffff }), (gso, full, last, port, seed) => {
        const payload = Math.min(USO_MAX_PAYLOAD, gso * full + (last % gso));
        const b = new Uint8Array(USO_HDR_LEN + payload);
        let x = seed >>> 0;
        for (let i = USO_HDR_LEN; i < b.length; i++) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          b[i] = x >>> 24;
        }
        writeUsoHeader(b, 0, SRC, DST, port, 6081, payload, gso);
        const ds = cut(b);
        assert.equal(ds.length, Math.max(1, Math.ceil(payload / gso)));
        for (const d of ds) {
          assert.equal(be(d, 24), d.length - 20);
          assert.equal(sum(d, 20, d.length - 20, sum(d, 12, 8, 17 + d.length - 20)), 0xffff, 'UDP checksum verifies');
        }
      }),
      { numRuns: 200 },
    );
  });
});
