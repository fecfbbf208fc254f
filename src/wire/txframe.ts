// Frames of the UDP tunnel GSO send tier (the TAP `gwlbtx0`, src/io/txtap.ts): pure functions
// over a buffer, so that the device (src/io/device.ts) only decides and writes, and the bytes are
// tested here against a table (test/unit/wire-txframe.test.ts).
//
// One frame per TCP super-packet read from gwo-/gwi-, laid out in front of it in place:
//
//   [virtio tunnel header 24][Ethernet 14][outer IPv4 20 + UDP 8][Geneve h][inner super-packet n]
//
// The kernel (>= 6.17) routes the frame as received on the TAP and cuts the inner super-packet
// into segments, each sent as its own Geneve datagram (inner sequence numbers, lengths and
// checksums computed in C). Nothing is allocated.

import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_TUNNEL_IPV4, writeVnetHdr } from './virtio';
import { addrSum, setIpv4Checksum, wr16 } from './offload-common';
import { fold16 } from './checksum32';
import { GENEVE_PORT } from './geneve';
import { writeOuterIpUdp, OUTER_HEADER_LEN } from './outer';

/** virtio_net_hdr_v1_hash_tunnel: the 12-byte v1 header, hash 4, report 2, padding 2, outer
 * transport header offset 2, inner network header offset 2. */
export const TX_TAP_HDR = 24;
/** Ethernet header of a TAP frame. */
export const TX_TAP_ETH = 14;
/** Bytes a frame puts in front of the flow's Geneve header: what must be free before it. */
export const TX_TAP_FRONT = TX_TAP_HDR + TX_TAP_ETH + OUTER_HEADER_LEN;

/** The inner headers' length (IP + TCP) of a TCP super-packet at b[p, p+n) with virtio GSO type
 * byte `gsoType` (ECN bit included) and gso_size `gsoSize`, when it can go whole through the TAP;
 * 0 when it cannot (then it is cut and sent by gwlbtun): not TCP, type and IP version disagree,
 * its IP length is not n, an IPv4 fragment, headers cut short, a segment of more than `maxInner`
 * bytes (GWLB's inner MTU), or a frame with the longest flow header (`maxFlowHeader`) over 64 KiB. */
export function tapSuperHeaders(b: Uint8Array, p: number, n: number, gsoType: number, gsoSize: number, maxInner: number, maxFlowHeader: number): number {
  const gso = gsoType & 0x7f;
  if (gso !== VNET_GSO_TCPV4 && gso !== VNET_GSO_TCPV6) return 0;
  if (n < 40 || n + OUTER_HEADER_LEN + maxFlowHeader > 65535) return 0;
  let ip: number;
  if (b[p] >> 4 === 6) {
    if (gso !== VNET_GSO_TCPV6 || b[p + 6] !== 6 || ((b[p + 4] << 8) | b[p + 5]) + 40 !== n) return 0;
    ip = 40;
  } else {
    if (gso !== VNET_GSO_TCPV4 || b[p] >> 4 !== 4 || b[p + 9] !== 6 || ((b[p + 2] << 8) | b[p + 3]) !== n) return 0;
    if (((b[p + 6] & 0x3f) | b[p + 7]) !== 0) return 0; // a fragment
    ip = (b[p] & 15) * 4;
  }
  if (ip < 20 || ip + 20 > n) return 0;
  const th = (b[p + ip + 12] >> 4) * 4;
  const hl = ip + th;
  if (th < 20 || hl > n || gsoSize === 0 || hl + gsoSize > maxInner) return 0;
  return hl;
}

/** Segments the kernel cuts a super-packet of n bytes (hl of them headers) into at gsoSize. */
export function tapSegments(n: number, hl: number, gsoSize: number): number {
  const payload = n - hl;
  return payload === 0 ? 1 : Math.ceil(payload / gsoSize);
}

/** Writes the frame's headers in front of the inner super-packet b[p, p+n), whose flow Geneve
 * header (h bytes) already ends at p: outer IPv4/UDP (TTL 65, as the kernel forwards the frame and
 * 64 leaves, as from the raw socket), Ethernet to `mac` from a locally administered address, the
 * inner TCP checksum field set to the pseudo-header sum over the whole super-packet (the kernel
 * completes each segment's), and the virtio tunnel header (`gsoType`: the super-packet's GSO type
 * byte, ECN bit kept; hl: its inner headers, from tapSuperHeaders). Returns where the frame
 * starts; it is TX_TAP_FRONT + h + n bytes long. */
export function writeTapFrame(
  b: Uint8Array,
  p: number,
  n: number,
  h: number,
  hl: number,
  gsoType: number,
  gsoSize: number,
  local: number,
  gwlb: number,
  gwlbPort: number,
  mac: Uint8Array,
): number {
  const v6 = b[p] >> 4 === 6;
  const ip = v6 ? 40 : (b[p] & 15) * 4;
  const start = p - h - OUTER_HEADER_LEN;
  writeOuterIpUdp(b, start, local, gwlb, gwlbPort, GENEVE_PORT, h + n);
  b[start + 8] = 65;
  setIpv4Checksum(b, start, 20);
  const eth = start - TX_TAP_ETH;
  for (let i = 0; i < 6; i++) {
    b[eth + i] = mac[i];
    b[eth + 6 + i] = i === 0 ? 2 : 0; // a locally administered source address
  }
  b[eth + 12] = 0x08;
  b[eth + 13] = 0x00;
  wr16(b, p + ip + 16, fold16(addrSum(b, p, v6) + 6 + (n - ip)));
  const inner = p - eth;
  const vh = eth - TX_TAP_HDR;
  writeVnetHdr(b, vh, VNET_F_NEEDS_CSUM, (gsoType & 0x7f) | (gsoType & VNET_GSO_ECN) | VNET_GSO_UDP_TUNNEL_IPV4, inner + hl, gsoSize, inner + ip, 16);
  for (let i = 10; i < 20; i++) b[vh + i] = 0; // num_buffers, hash value, report, padding
  b[vh + 20] = TX_TAP_ETH + 20; // outer_th_offset: Ethernet + outer IPv4
  b[vh + 21] = 0;
  b[vh + 22] = inner & 0xff; // inner_nh_offset
  b[vh + 23] = inner >>> 8;
  return vh;
}
