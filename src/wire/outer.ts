// Outer IPv4 + UDP headers of packets returned to GWLB through the raw socket (docs/protocol.md
// section 2). Hot path: no allocation.

export const OUTER_HEADER_LEN = 28; // IPv4 (20, no options) + UDP (8)

/** Write the outer IPv4 + UDP headers at buf[off, off+28) for a UDP payload of payloadLen bytes that
 * follows them. IPv4: version 4, IHL 5, TOS 0, total length, ID 0, flags 0, TTL 64, protocol 17,
 * header checksum computed; UDP: ports, length, checksum 0 (legal for IPv4). No allocation.
 *
 * srcIp/dstIp are IPv4 addresses as 32-bit values, most significant byte first (198.18.0.1 is
 * 0xc6120001), as in src/io/native.ts; a negative int32 (as read from an Int32Array) works too.
 * The caller keeps payloadLen <= 65507 (ours is at most GENEVE_HEADER_MAX 260 + 8500 inner bytes);
 * larger values would wrap the 16-bit length fields.
 * With IPPROTO_RAW the kernel fills in an ID of 0 and recomputes the checksum anyway; computing it
 * here keeps the bytes correct for any other consumer (captures, tests). */
export function writeOuterIpUdp(
  buf: Uint8Array,
  off: number,
  srcIp: number,
  dstIp: number,
  srcPort: number,
  dstPort: number,
  payloadLen: number,
): void {
  const total = OUTER_HEADER_LEN + payloadLen;
  const udpLen = 8 + payloadLen;
  buf[off] = 0x45;
  buf[off + 1] = 0;
  buf[off + 2] = (total >>> 8) & 0xff;
  buf[off + 3] = total & 0xff;
  buf[off + 4] = 0;
  buf[off + 5] = 0;
  buf[off + 6] = 0;
  buf[off + 7] = 0;
  buf[off + 8] = 64;
  buf[off + 9] = 17;
  buf[off + 12] = srcIp >>> 24;
  buf[off + 13] = (srcIp >>> 16) & 0xff;
  buf[off + 14] = (srcIp >>> 8) & 0xff;
  buf[off + 15] = srcIp & 0xff;
  buf[off + 16] = dstIp >>> 24;
  buf[off + 17] = (dstIp >>> 16) & 0xff;
  buf[off + 18] = (dstIp >>> 8) & 0xff;
  buf[off + 19] = dstIp & 0xff;
  // Header checksum over the ten 16-bit words with the checksum word taken as 0. Known fields
  // folded into constants: 0x4500 + (ID 0) + (flags 0) + 0x4011 (TTL 64, protocol 17).
  let sum =
    0x4500 +
    (total & 0xffff) +
    0x4011 +
    (srcIp >>> 16) +
    (srcIp & 0xffff) +
    (dstIp >>> 16) +
    (dstIp & 0xffff);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  const csum = ~sum & 0xffff;
  buf[off + 10] = csum >>> 8;
  buf[off + 11] = csum & 0xff;

  const u = off + 20;
  buf[u] = (srcPort >>> 8) & 0xff;
  buf[u + 1] = srcPort & 0xff;
  buf[u + 2] = (dstPort >>> 8) & 0xff;
  buf[u + 3] = dstPort & 0xff;
  buf[u + 4] = (udpLen >>> 8) & 0xff;
  buf[u + 5] = udpLen & 0xff;
  buf[u + 6] = 0;
  buf[u + 7] = 0;
}
