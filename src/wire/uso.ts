// The header of one UDP GSO (USO) packet written into the TUN device the send tier of
// --offload on uses on kernels without UDP tunnel GSO (docs/architecture.md "TUN offloads"):
//
//   virtio_net_hdr (10) | outer IPv4 (20) | UDP (8) | [Geneve + segment 1][Geneve + segment 2]...
//
// The kernel routes the packet out (it is received on the TUN, so it is forwarded: TTL 65 here,
// 64 leaves) and cuts the UDP payload every gso_size bytes into datagrams, each with a copy of the
// IPv4/UDP header, its own lengths, an incremented IPv4 ID and its UDP checksum computed
// (CHECKSUM_PARTIAL: the field holds the pseudo-header sum with the whole UDP length, which the
// kernel adjusts per datagram). Everything else is what writeOuterIpUdp (src/wire/outer.ts) puts
// in front of a single datagram sent through the raw socket. Pure, no allocation.

import { fold16 } from './checksum32';
import { setIpv4Checksum, wr16 } from './offload-common';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from './outer';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_UDP_L4, VNET_HDR_LEN, writeVnetHdr } from './virtio';

/** Bytes written by writeUsoHeader: the virtio header, outer IPv4 and UDP. */
export const USO_HDR_LEN = VNET_HDR_LEN + OUTER_HEADER_LEN;
/** The largest UDP payload of one USO packet (the IPv4 total length is 16 bits). */
export const USO_MAX_PAYLOAD = 65535 - OUTER_HEADER_LEN;

/**
 * Writes buf[off, off+USO_HDR_LEN): the header of a USO packet whose UDP payload (the datagrams'
 * payloads back to back, all gsoSize bytes long but the last) is payloadLen bytes and follows it.
 * When payloadLen <= gsoSize it is a single datagram: no GSO, only the checksum left to the kernel.
 * srcIp/dstIp as in writeOuterIpUdp (32-bit, most significant byte first; int32 works too).
 * The caller keeps 0 < gsoSize and payloadLen <= USO_MAX_PAYLOAD.
 */
export function writeUsoHeader(
  buf: Uint8Array,
  off: number,
  srcIp: number,
  dstIp: number,
  srcPort: number,
  dstPort: number,
  payloadLen: number,
  gsoSize: number,
): void {
  const gso = payloadLen > gsoSize;
  writeVnetHdr(buf, off, VNET_F_NEEDS_CSUM, gso ? VNET_GSO_UDP_L4 : VNET_GSO_NONE, OUTER_HEADER_LEN, gso ? gsoSize : 0, 20, 6);
  const ip = off + VNET_HDR_LEN;
  writeOuterIpUdp(buf, ip, srcIp, dstIp, srcPort, dstPort, payloadLen);
  buf[ip + 8] = 65; // forwarded by the kernel: 64 leaves, as from the raw socket
  setIpv4Checksum(buf, ip, 20);
  // The UDP checksum field: the pseudo-header sum (addresses, protocol, UDP length), not inverted.
  const s = srcIp >>> 0;
  const d = dstIp >>> 0;
  wr16(buf, ip + 26, fold16((s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + 17 + 8 + payloadLen));
}
