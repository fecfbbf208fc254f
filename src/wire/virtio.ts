// The virtio_net_hdr a TUN device opened with IFF_VNET_HDR puts in front of every packet it hands
// over and expects in front of every packet written to it (docs/architecture.md, "TUN offloads"):
// how the packet's checksum and segmentation are left to be done. Pure, no allocation.
//
// Layout (little-endian, as TUNSETVNETLE/virtio 1.0 and every Linux host we run on have it):
//
//   0  u8  flags        VNET_F_*
//   1  u8  gso_type     VNET_GSO_* (the ECN bit or'ed in)
//   2  u16 hdr_len      length of the headers (a hint; the kernel reports its linear head here,
//                       which may include payload: never trust it on read)
//   4  u16 gso_size     payload bytes per segment (the MSS for TCP)
//   6  u16 csum_start   offset of the transport header from the start of the packet
//   8  u16 csum_offset  offset of the checksum field from csum_start (16 for TCP, 6 for UDP)
//  10  u16 num_buffers  the 12-byte v1 header only (TUNSETVNETHDRSZ 12); 0 from a TUN device
//
// With VNET_F_NEEDS_CSUM the checksum field holds the folded (not complemented) pseudo-header sum
// and the receiver completes it: the one's complement of the sum from csum_start to the end.

export const VNET_HDR_LEN = 10;
export const VNET_HDR_V1_LEN = 12;

// flags
export const VNET_F_NEEDS_CSUM = 0x01;
export const VNET_F_DATA_VALID = 0x02;
export const VNET_F_RSC_INFO = 0x04;

// gso_type
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3; // UFO, not produced by current kernels
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5; // USO, IPv4 and IPv6 (kernel >= 6.2)
export const VNET_GSO_UDP_TUNNEL_IPV4 = 0x20; // kernel >= 6.17, with the 24-byte tunnel header
export const VNET_GSO_UDP_TUNNEL_IPV6 = 0x40;
export const VNET_GSO_ECN = 0x80; // the TCP super-packet carries CWR (first segment only)

// TUNSETOFFLOAD bits (linux/if_tun.h; the last four are missing from Debian 12's headers).
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;
export const TUN_F_UDP_TUNNEL_GSO = 0x80;
export const TUN_F_UDP_TUNNEL_GSO_CSUM = 0x100;

function le16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

export function vnetFlags(b: Uint8Array, off: number): number {
  return b[off];
}
export function vnetGsoType(b: Uint8Array, off: number): number {
  return b[off + 1];
}
export function vnetHdrLen(b: Uint8Array, off: number): number {
  return le16(b, off + 2);
}
export function vnetGsoSize(b: Uint8Array, off: number): number {
  return le16(b, off + 4);
}
export function vnetCsumStart(b: Uint8Array, off: number): number {
  return le16(b, off + 6);
}
export function vnetCsumOffset(b: Uint8Array, off: number): number {
  return le16(b, off + 8);
}

/** Writes a 10-byte virtio_net_hdr at b[off, off+10). Values are taken modulo their field size. */
export function writeVnetHdr(
  b: Uint8Array,
  off: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  b[off] = flags;
  b[off + 1] = gsoType;
  b[off + 2] = hdrLen & 0xff;
  b[off + 3] = (hdrLen >>> 8) & 0xff;
  b[off + 4] = gsoSize & 0xff;
  b[off + 5] = (gsoSize >>> 8) & 0xff;
  b[off + 6] = csumStart & 0xff;
  b[off + 7] = (csumStart >>> 8) & 0xff;
  b[off + 8] = csumOffset & 0xff;
  b[off + 9] = (csumOffset >>> 8) & 0xff;
}

/** The header of a plain packet (no checksum or segmentation left to do): `len` zero bytes
 * (VNET_HDR_LEN, or VNET_HDR_V1_LEN for the v1 header). */
export function writeVnetNone(b: Uint8Array, off: number, len: number): void {
  for (let i = 0; i < len; i++) b[off + i] = 0;
}
