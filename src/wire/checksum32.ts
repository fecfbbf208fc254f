// Internet checksum sums over long runs of bytes (TCP/UDP payloads), 32 bits per read.
//
// The same contract as onesSum in src/testkit/checksum.ts (an unfolded sum, equal to the big-endian 16-bit
// word sum modulo 0xffff, so the two mix freely and foldSum finishes either), at about half the
// cost over 1448 bytes (bench/offload.ts): each 32-bit big-endian word is read with one DataView
// load and split into its two 16-bit halves in integer arithmetic (no double-precision adds).
// Runs of any length and alignment. No allocation, except one DataView when an array is not
// among the last four seen (the data plane passes the same few buffers every time).

// Views of the last few arrays seen (the receive and the transmit buffer of a worker, and a
// spare), so that alternating between buffers allocates nothing.
class LastViews<V> {
  private readonly arr: (Uint8Array | undefined)[] = [undefined, undefined, undefined, undefined];
  private readonly view: V[];
  private next = 0;

  constructor(
    private readonly make: (b: Uint8Array) => V,
    empty: V,
  ) {
    this.view = [empty, empty, empty, empty];
  }

  of(b: Uint8Array): V {
    for (let k = 0; k < 4; k++) if (this.arr[k] === b) return this.view[k];
    const k = this.next;
    this.next = (k + 1) & 3;
    this.arr[k] = b;
    this.view[k] = this.make(b);
    return this.view[k];
  }
}

/** DataViews of the arrays themselves. */
const views = new LastViews<DataView>((b) => new DataView(b.buffer, b.byteOffset, b.byteLength), new DataView(new ArrayBuffer(0)));
/** Word views (native byte order, 32 bits) of the whole ArrayBuffer of each array. */
const words = new LastViews<Uint32Array>((b) => new Uint32Array(b.buffer, 0, b.buffer.byteLength >>> 2), new Uint32Array(0));

/** Little-endian machines only (every Linux host we run on): the fast path below reads words in
 * native order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Unfolded one's complement sum of buf[off, off+len) read as big-endian 16-bit words (an odd last
 * byte is the high byte of a word padded with zero), added to `sum` (a value below 2^31). The result
 * is below 2^31 and is finished with foldSum (src/testkit/checksum.ts) or fold16.
 *
 * Runs of 64 bytes or more that start 4-byte aligned in their ArrayBuffer (a TCP header behind a
 * Geneve header and an IPv4/IPv6 header in a receive slot is) take a faster path: 32-bit words in
 * native (little-endian) order added as doubles (exact: 2^53 is far away), folded to 16 bits, and
 * the bytes of the result swapped. The one's complement sum does not depend on byte order apart
 * from that swap (RFC 1071, 2.(B)), and a 32-bit word is congruent to the sum of its two halves
 * modulo 0xffff. About 3x faster over 1448 bytes (bench/offload.ts). */
export function sumBytes32(buf: Uint8Array, off: number, len: number, sum: number): number {
  if (len >= 64 && LITTLE_ENDIAN && ((buf.byteOffset + off) & 3) === 0) {
    const w = words.of(buf);
    let i = (buf.byteOffset + off) >>> 2;
    const n = len >>> 2;
    const end = i + n;
    let a = 0;
    let b = 0;
    for (; i + 4 <= end; i += 4) {
      a += w[i] + w[i + 1];
      b += w[i + 2] + w[i + 3];
    }
    for (; i < end; i++) a += w[i];
    a += b;
    // Fold the (at most 2^48) double to 16 bits, end-around carry; then swap its bytes.
    let f = (a % 65536) + Math.floor(a / 65536);
    f = (f % 65536) + Math.floor(f / 65536);
    f = (f & 0xffff) + (f >>> 16);
    f = (f & 0xffff) + (f >>> 16);
    let s = (sum | 0) + (((f & 0xff) << 8) | (f >>> 8));
    let t = off + (n << 2);
    const stop = off + len;
    if (t + 2 <= stop) {
      s += (buf[t] << 8) | buf[t + 1];
      t += 2;
    }
    if (t < stop) s += buf[t] << 8;
    return s;
  }
  const dv = views.of(buf);
  const end = off + len;
  let s = sum | 0;
  let i = off;
  while (i + 16 <= end) {
    // Four words per step into two sums (about a third faster than one word per step); at most
    // 8192 words between folds, so each sum stays below 2^31 (int arithmetic).
    let a = 0;
    let stop = i + 4 * 8192;
    if (stop > end - 15) stop = end - 15;
    for (; i < stop; i += 16) {
      const w0 = dv.getUint32(i);
      const w1 = dv.getUint32(i + 4);
      const w2 = dv.getUint32(i + 8);
      const w3 = dv.getUint32(i + 12);
      s += (w0 >>> 16) + (w0 & 0xffff) + (w1 >>> 16) + (w1 & 0xffff);
      a += (w2 >>> 16) + (w2 & 0xffff) + (w3 >>> 16) + (w3 & 0xffff);
    }
    s = (s & 0xffff) + (s >>> 16) + (a & 0xffff) + (a >>> 16);
  }
  for (; i + 4 <= end; i += 4) {
    const w = dv.getUint32(i);
    s += (w >>> 16) + (w & 0xffff);
  }
  if (i + 2 <= end) {
    s += (buf[i] << 8) | buf[i + 1];
    i += 2;
  }
  if (i < end) s += buf[i] << 8;
  return s;
}

/** Folds a non-negative sum below 2^32 to 16 bits with end-around carry (not complemented). */
export function fold16(sum: number): number {
  let s = (sum & 0xffff) + (sum >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s;
}
