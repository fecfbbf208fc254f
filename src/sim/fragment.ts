// Test and emulator helpers: cut a whole IPv4/IPv6 packet into fragments, as a sender's kernel
// would, and build ICMP errors that quote a packet. Allocates freely; never on the hot path.

import { parseIp, put16, put32 } from '../testkit/build';
import { internetChecksum, pseudoHeaderSum } from '../testkit/checksum';

/** Cut `pkt` (IPv4 without options, or IPv6 without extension headers) into fragments carrying at
 * most `chunk` bytes of its payload each (a multiple of 8), all with identification `id`. IPv4
 * fragments get MF/offset and a new header checksum; IPv6 fragments get a fragment header.
 * Returns them in order (first fragment first). */
export function fragmentPacket(pkt: Uint8Array, chunk: number, id: number): Uint8Array[] {
  if (chunk <= 0 || chunk % 8 !== 0) throw new RangeError('chunk must be a positive multiple of 8');
  const v = pkt[0] >> 4;
  const hl = v === 4 ? (pkt[0] & 15) * 4 : 40;
  if (v === 6 && pkt[6] === 44) throw new RangeError('already a fragment');
  const payload = pkt.subarray(hl);
  const out: Uint8Array[] = [];
  for (let o = 0; o < payload.length; o += chunk) {
    const part = payload.subarray(o, Math.min(payload.length, o + chunk));
    const more = o + chunk < payload.length;
    if (v === 4) {
      const f = new Uint8Array(hl + part.length);
      f.set(pkt.subarray(0, hl), 0);
      f.set(part, hl);
      put16(f, 2, f.length);
      put16(f, 4, id & 0xffff);
      put16(f, 6, (pkt[6] & 0x40 ? 0x4000 : 0) | (more ? 0x2000 : 0) | (o / 8));
      put16(f, 10, 0);
      put16(f, 10, internetChecksum(f, 0, hl, 0));
      out.push(f);
    } else {
      const f = new Uint8Array(48 + part.length);
      f.set(pkt.subarray(0, 40), 0);
      put16(f, 4, 8 + part.length);
      f[6] = 44;
      f[40] = pkt[6]; // the upper-layer protocol
      put16(f, 42, (o / 8) * 8 + (more ? 1 : 0)); // offset << 3 | M
      put32(f, 44, id >>> 0);
      f.set(part, 48);
      out.push(f);
    }
  }
  return out;
}

/** An ICMP error (IPv4: type/code with `rest` as the 4 bytes after the checksum, e.g. the next-hop
 * MTU for "fragmentation needed"; IPv6: type 1-4, `rest` the MTU of "packet too big") from src to
 * dst, quoting `quoted` (cut to `quoteLen` bytes when given). Checksums correct. */
export function buildIcmpError(src: string, dst: string, type: number, code: number, rest: number, quoted: Uint8Array, quoteLen?: number): Uint8Array {
  const s = parseIp(src);
  const d = parseIp(dst);
  const q = quoted.subarray(0, quoteLen === undefined ? quoted.length : Math.min(quoteLen, quoted.length));
  const icmp = new Uint8Array(8 + q.length);
  icmp[0] = type;
  icmp[1] = code;
  put32(icmp, 4, rest >>> 0);
  icmp.set(q, 8);
  if (s.family === 4) {
    put16(icmp, 2, internetChecksum(icmp, 0, icmp.length, 0));
    const p = new Uint8Array(20 + icmp.length);
    p[0] = 0x45;
    put16(p, 2, p.length);
    p[8] = 64;
    p[9] = 1;
    p.set(s.bytes, 12);
    p.set(d.bytes, 16);
    put16(p, 10, internetChecksum(p, 0, 20, 0));
    p.set(icmp, 20);
    return p;
  }
  put16(icmp, 2, internetChecksum(icmp, 0, icmp.length, pseudoHeaderSum(s.bytes, d.bytes, 58, icmp.length)));
  const p = new Uint8Array(40 + icmp.length);
  p[0] = 0x60;
  put16(p, 4, icmp.length);
  p[6] = 58;
  p[7] = 64;
  p.set(s.bytes, 8);
  p.set(d.bytes, 24);
  p.set(icmp, 40);
  return p;
}

