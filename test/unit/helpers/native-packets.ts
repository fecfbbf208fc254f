// Test-only packet builders for the native addon tests (test/unit/native.test.ts and
// native-ns-child.ts). Setup code, so allocation is fine here.

/** '192.0.2.1' -> [192, 0, 2, 1] */
function ip4Bytes(s: string): number[] {
  const p = s.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`bad IPv4 ${s}`);
  return p;
}

/** RFC 1071 checksum of the IPv4 header bytes [0, 20). */
function ip4HeaderChecksum(b: Uint8Array, off: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Writes an IPv4 + UDP packet (UDP checksum 0 = none) at buf[off..]; returns its length. */
export function writeIpv4Udp(buf: Uint8Array, off: number, src: string, dst: string, sport: number, dport: number,
  payload: Uint8Array): number {
  const total = 28 + payload.length;
  const s = ip4Bytes(src);
  const d = ip4Bytes(dst);
  const h = [
    0x45, 0, total >> 8, total & 255, // version/IHL, TOS, total length
    0, 0, 0x40, 0, // id (0: the raw socket fills it in), DF
    64, 17, 0, 0, // TTL, protocol UDP, header checksum (below)
    ...s, ...d,
    sport >> 8, sport & 255, dport >> 8, dport & 255,
    (8 + payload.length) >> 8, (8 + payload.length) & 255, 0, 0, // UDP length, checksum 0
  ];
  buf.set(h, off);
  const c = ip4HeaderChecksum(buf, off);
  buf[off + 10] = c >> 8;
  buf[off + 11] = c & 255;
  buf.set(payload, off + 28);
  return total;
}

export function ipv4Udp(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(28 + payload.length);
  writeIpv4Udp(b, 0, src, dst, sport, dport, payload);
  return b;
}
