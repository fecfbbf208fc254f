// The bytes of the lab server's /bytes/N answer: a fixed pseudo-random stream (xorshift32 from a
// fixed seed), so that the client can check every byte of a bulk transfer without a second copy.

/** The first n bytes of the stream (n <= 64 MiB). */
export function labBytes(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 64 << 20) throw new RangeError('size must be 0..64 MiB');
  const b = Buffer.allocUnsafe(n);
  let x = 0x2545f491;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  for (let j = 0; i < n; i++, j++) b[i] = (x >>> (8 * j)) & 0xff;
  return b;
}
