// Internet checksum (RFC 1071) helpers for building and verifying packets: a tool (src/testkit/,
// docs/architecture.md "Layers"), never shipped; the daemon's sums are in src/wire/checksum32.ts
// and src/wire/outer.ts.
//
// Sums are kept unfolded in a plain JS number (a double, exact up to 2^53), so no carry folding is
// needed inside the loop: 2^53 / 0xffff is far more 16-bit words than any packet holds.
// Allocation-free; build.ts and the tests use them, the hot path has its own fixed-size loop
// (outer.ts).

/** Adds the bytes buf[off, off+len) as big-endian 16-bit words to `sum` (an odd last byte is padded
 * with a zero byte on the right) and returns the unfolded sum. */
export function onesSum(buf: Uint8Array, off: number, len: number, sum: number): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** Folds an unfolded sum to 16 bits (end-around carry), without complementing. */
export function foldSum(sum: number): number {
  // Division instead of >>> keeps sums above 2^32 exact.
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for bytes buf[off, off+len) plus an optional pre-summed part
 * (e.g. a pseudo-header): the one's complement of the folded one's complement sum. */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial: number): number {
  return ~foldSum(onesSum(buf, off, len, initial)) & 0xffff;
}

/** Unfolded sum of the TCP/UDP/ICMPv6 pseudo-header: source and destination addresses (4 or 16
 * bytes each), the upper-layer protocol and the upper-layer length. The IPv4 (RFC 768/793) and
 * IPv6 (RFC 8200 section 8.1) forms add up to the same one's complement sum. */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, proto: number, upperLen: number): number {
  let sum = onesSum(src, 0, src.length, 0);
  sum = onesSum(dst, 0, dst.length, sum);
  return sum + proto + (upperLen >>> 16) + (upperLen & 0xffff);
}
