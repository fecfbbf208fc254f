// What the TCP offload helpers (src/wire/coalesce.ts, src/wire/segment.ts) share: limits, TCP
// flags, byte access and checksum pieces. See src/wire/offload.ts for the design and figures.

import { sumBytes32, fold16 } from './checksum32';
/** The largest inner packet (GWLB's limit): no segment is ever longer. */
export const MAX_INNER = 8500;
/** The largest super-packet built (IP total length). */
export const MAX_SUPER = 65535;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_URG = 0x20;
export const TCP_CWR = 0x80;

export function rd16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
export function sameBytes(b: Uint8Array, x: number, y: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[x + k] !== b[y + k]) return false;
  return true;
}

/** Writes the IPv4 header checksum of the header at b[ip, ip+ihl). */
export function setIpv4Checksum(b: Uint8Array, ip: number, ihl: number): void {
  b[ip + 10] = 0;
  b[ip + 11] = 0;
  wr16(b, ip + 10, ~fold16(sumBytes32(b, ip, ihl, 0)) & 0xffff);
}

/** Unfolded sum of the pseudo-header's addresses (IPv4 or IPv6 at `ip`). */
export function addrSum(b: Uint8Array, ip: number, v6: boolean): number {
  return v6 ? sumBytes32(b, ip + 8, 32, 0) : sumBytes32(b, ip + 12, 8, 0);
}
