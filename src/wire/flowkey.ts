// Flow keys of inner IPv4/IPv6 packets (hot path: no allocation, plain loops over Uint8Array).
//
// Key choices (docs/protocol.md section 2, and where the original fell short, section 4):
// - Ports only for TCP (6) and UDP (17); every other protocol, including ICMP/ICMPv6, SCTP, ESP
//   (50) and no-next-header (59), is keyed on (protocol, source, destination) with ports word 0.
// - IPv4 honours IHL: options shift the transport header. The IPv4 total length bounds the packet
//   (trailing padding after it is ignored); a total length beyond the bytes present is malformed.
// - IPv6 walks the extension headers: hop-by-hop 0, routing 43, destination options 60, mobility
//   135, HIP 139, shim6 140 (length (n+1)*8), AH 51 (length (n+2)*4), fragment 44 (8 bytes). The
//   first other next-header value is the upper-layer protocol. The walk is capped at
//   MAX_EXT_HEADERS headers; a longer chain is rejected (false), as is one running past the end.
//   The IPv6 payload length bounds the packet, like the IPv4 total length. A payload length of 0
//   (jumbogram) therefore leaves no room for its hop-by-hop header and is rejected (our MTU is 8500).
// - Fragments are keyed WITHOUT ports (ports word 0): an IPv4 packet with MF set or a nonzero
//   fragment offset; an IPv6 packet with a fragment header whose offset is nonzero or whose M flag
//   is set. The protocol is the upper-layer protocol: the IPv4 protocol field, or the IPv6
//   fragment header's next-header field (not walked further: later fragments cannot be walked, and
//   every fragment of a datagram must get the same key). So all fragments of a datagram, the first
//   one included although it carries the ports, share one 3-tuple key, and bytes of a non-first
//   fragment are never read as ports. The data plane then ties fragments to the flow of their
//   datagram (first fragment's ports, IP ID / fragment ID: src/wire/fragments.ts,
//   src/dataplane/related.ts, docs/architecture.md "Fragments"); the 3-tuple stays the last resort.
// - An IPv6 atomic fragment (fragment header with offset 0 and M 0, RFC 6946) is a whole
//   datagram, not a fragment: the walk continues after its fragment header and ports are read.
// - Only the key is derived here: no checksum checks, no TTL checks.

import { ipv4HeaderLen, ipv4TotalLen } from './ipv4';

/** A flow key is a Uint32Array of KEY_WORDS words:
 *  [0] endpoint id: NOT written by the parser (the caller owns it)
 *  [1] family << 8 | protocol  (family 4 or 6; protocol = upper-layer protocol number)
 *  [2..5] source address (IPv4: [2] = address as uint32 big-endian value, [3..5] = 0; IPv6: 4 words, big-endian)
 *  [6..9] destination address (same)
 *  [10] srcPort << 16 | dstPort, or 0 when the key has no ports (stored >>> 0) */
export const KEY_WORDS = 11;

/** Longest IPv6 extension header chain walked before the packet is rejected. */
export const MAX_EXT_HEADERS = 16;

/** Fill key[1..10] from the IP packet at buf[off, off+len). Returns true, or false when it is not a
 * well-formed IPv4/IPv6 packet whose key can be read (truncated header, bad IHL, an extension header
 * running past the end, TCP/UDP too short to hold its ports). Never throws, no allocation.
 * On false, key[1..10] may have been partly written. */
export function flowKeyFromIp(buf: Uint8Array, off: number, len: number, key: Uint32Array): boolean {
  // Clamp to the bytes that exist (as parseGeneve does) so that every read is in bounds.
  const avail = buf.length - off;
  if (!(off >= 0 && avail >= 0 && off === Math.floor(off))) return false;
  if (!(len <= avail)) len = len > avail ? avail : 0;
  if (!(len >= 20)) return false; // shorter than any IPv4 or IPv6 header
  len = Math.floor(len);

  const version = buf[off] >> 4;
  if (version === 4) {
    const ihlBytes = ipv4HeaderLen(buf, off, len);
    if (ihlBytes === 0) return false;
    const total = ipv4TotalLen(buf, off);
    const proto = buf[off + 9];
    key[1] = (4 << 8) | proto;
    key[2] = ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
    key[3] = 0;
    key[4] = 0;
    key[5] = 0;
    key[6] = ((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0;
    key[7] = 0;
    key[8] = 0;
    key[9] = 0;
    // MF (0x2000) or fragment offset (0x1fff): a fragment, keyed without ports.
    if ((((buf[off + 6] << 8) | buf[off + 7]) & 0x3fff) !== 0 || (proto !== 6 && proto !== 17)) {
      key[10] = 0;
      return true;
    }
    const t = off + ihlBytes;
    if (ihlBytes + 4 > total) return false;
    key[10] = ((buf[t] << 24) | (buf[t + 1] << 16) | (buf[t + 2] << 8) | buf[t + 3]) >>> 0;
    return true;
  }

  if (version !== 6 || len < 40) return false;
  const end = off + 40 + ((buf[off + 4] << 8) | buf[off + 5]);
  if (end > off + len) return false;
  let nh = buf[off + 6];
  let p = off + 40;
  let fragment = false;
  let n = 0;
  for (;;) {
    if (nh === 0 || nh === 43 || nh === 60 || nh === 135 || nh === 139 || nh === 140) {
      if (p + 8 > end) return false;
      const next = p + (buf[p + 1] + 1) * 8;
      if (next > end) return false;
      nh = buf[p];
      p = next;
    } else if (nh === 51) {
      if (p + 8 > end) return false;
      const next = p + (buf[p + 1] + 2) * 4;
      if (next > end) return false;
      nh = buf[p];
      p = next;
    } else if (nh === 44) {
      if (p + 8 > end) return false;
      nh = buf[p];
      // Offset (13 bits, 0xfff8) or M (0x0001); the 2 reserved bits (0x0006) are ignored.
      const offM = ((buf[p + 2] << 8) | buf[p + 3]) & 0xfff9;
      p += 8;
      if (offM !== 0) {
        fragment = true;
        break; // nh = the fragment header's next header
      }
      // Atomic fragment: keep walking.
    } else {
      break; // upper-layer protocol
    }
    if (++n > MAX_EXT_HEADERS) return false;
  }

  key[1] = (6 << 8) | nh;
  key[2] = ((buf[off + 8] << 24) | (buf[off + 9] << 16) | (buf[off + 10] << 8) | buf[off + 11]) >>> 0;
  key[3] = ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
  key[4] = ((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0;
  key[5] = ((buf[off + 20] << 24) | (buf[off + 21] << 16) | (buf[off + 22] << 8) | buf[off + 23]) >>> 0;
  key[6] = ((buf[off + 24] << 24) | (buf[off + 25] << 16) | (buf[off + 26] << 8) | buf[off + 27]) >>> 0;
  key[7] = ((buf[off + 28] << 24) | (buf[off + 29] << 16) | (buf[off + 30] << 8) | buf[off + 31]) >>> 0;
  key[8] = ((buf[off + 32] << 24) | (buf[off + 33] << 16) | (buf[off + 34] << 8) | buf[off + 35]) >>> 0;
  key[9] = ((buf[off + 36] << 24) | (buf[off + 37] << 16) | (buf[off + 38] << 8) | buf[off + 39]) >>> 0;
  if (fragment || (nh !== 6 && nh !== 17)) {
    key[10] = 0;
    return true;
  }
  if (p + 4 > end) return false;
  key[10] = ((buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]) >>> 0;
  return true;
}

/** The kernel's own IPv6 link-local housekeeping on a new interface (router solicitations, MLD):
 * from fe80::/10 or ::, or to ff02::/16. Never GWLB traffic (drop reason link_local). */
export function isLinkLocal6(k: Uint32Array): boolean {
  if (k[1] >>> 8 !== 6) return false;
  return k[2] >>> 22 === 0x3fa || k[6] >>> 16 === 0xff02 || (k[2] | k[3] | k[4] | k[5]) === 0;
}
