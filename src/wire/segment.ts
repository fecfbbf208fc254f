// Segmentation (segmentPacket), the return side: a packet read from a TUN behind its virtio header.
// GSO_TCPV4/TCPV6 (and GSO_UDP_L4) packets are cut into segments of gso_size payload bytes; each
// gets its IP length, IPv4 ID (incrementing), TCP sequence number, flags (CWR on the first only,
// FIN/PSH on the last only) and full checksums computed from scratch (the IPv4 header checksum,
// the TCP/UDP checksum over pseudo-header, header and payload), whatever the checksum field held.
// hdr_len is not trusted (the kernel puts its linear head length there); the headers are parsed.
// A packet without GSO but with NEEDS_CSUM gets its checksum completed in place.
// Two output forms, chosen per call: complete segments copied into slots (copyPayload true: each
// slot starts where the caller leaves headroom for the outer headers, fitting the raw socket's one
// range per datagram, src/io/native.ts rawSend), or headers only in the slots with the payload left
// in the super-packet (copyPayload false: for a sender that takes iovecs, headers then payload
// slice). Choice for the data plane: complete segments. The copy is a memmove of at most 8500 bytes
// (50-80 ns per 1448 bytes) against 0.7-1 us for the rest of a segment (its checksum has to read
// the payload anyway), within the noise of the two forms' figures below, and it needs no change to
// rawSend (a second iovec per datagram, C).
//
// Long super-packets: the kernel hands over TCP super-packets of up to 64 KiB whatever their
// segment count, so one of a peer with a small MSS holds more segments than any output (at MSS 536
// about 120; Linux takes an MSS down to 48 bytes: over 1,300). A call cuts at most `maxSegs` of
// them, from segment `from` on, and says in `out.total` how many the packet holds: the caller
// cuts the rest with further calls (from += the count returned), reusing its output each time.
// Every segment comes out the same whichever call cut it (its sequence number, IPv4 ID and flags
// follow from its index in the packet).
//
// Shared parts and the figures measured: src/wire/offload.ts.

import { sumBytes32, fold16 } from './checksum32';
import { flowKeyFromIp, isLinkLocal6 } from './flowkey';
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4 } from './virtio';
import { rd16, rd32, wr16, wr32, setIpv4Checksum, addrSum, TCP_FIN, TCP_PSH, TCP_CWR, MAX_INNER } from './offload-common';

// ---- segmentation -----------------------------------------------------------------------------

/** segmentPacket results below 0. */
export const SEG_MALFORMED = -1; // the virtio header does not agree with the packet, or the packet is cut short
export const SEG_UNSUPPORTED = -2; // a GSO type we do not cut (UFO, UDP tunnel), IPv6 extension headers
export const SEG_TOO_BIG = -3; // a segment would be longer than MAX_INNER
export const SEG_NO_ROOM = -4; // no segment fits (maxSegs 0, slots too small), or `from` past the last
/** Names by -result (index 0 unused). */
export const SEG_ERROR_NAMES = ['', 'gso_malformed', 'gso_unsupported', 'gso_too_big', 'gso_no_room'] as const;

/** Where segmentPacket put its segments. */
export class Segments {
  count = 0;
  /** Segments of the whole packet (count is those of the last call, from its `from` on). */
  total = 0;
  /** Segment k's bytes (copyPayload) or its headers (not copyPayload) are buf[off[k], off[k]+len[k]). */
  readonly off: Int32Array;
  readonly len: Int32Array;
  /** Segment k's payload in the super-packet (copied behind the headers when copyPayload). */
  readonly payOff: Int32Array;
  readonly payLen: Int32Array;
  constructor(readonly max: number) {
    this.off = new Int32Array(max);
    this.len = new Int32Array(max);
    this.payOff = new Int32Array(max);
    this.payLen = new Int32Array(max);
  }
}

/** Completes the checksum of a CHECKSUM_PARTIAL packet in place: the field at p+start+offset holds
 * the pseudo-header sum; the checksum covers p+start to p+n. 0 is written as 0xffff (as the kernel
 * does). Returns false when the positions do not fit the packet. */
export function completeChecksum(buf: Uint8Array, p: number, n: number, start: number, offset: number): boolean {
  if (start + offset + 2 > n || (offset & 1) !== 0) return false;
  const c = ~fold16(sumBytes32(buf, p + start, n - start, 0)) & 0xffff;
  wr16(buf, p + start + offset, c === 0 ? 0xffff : c);
  return true;
}

/**
 * The packet behind a virtio header at buf[off, off+len) (vnetLen 10 or 12), as read from a TUN.
 * Returns:
 *  - 0: not a GSO packet; the packet is buf[off+vnetLen, off+len), complete (a NEEDS_CSUM checksum
 *    has been completed in place);
 *  - n >= 1: segments from .. from+n-1 of the packet's out.total, described in `out` (index 0 is
 *    segment `from`), written at buf[dstOff + k*stride ...): whole segments when copyPayload, else
 *    headers only (payload at out.payOff/payLen in the super-packet); n < out.total - from when
 *    maxSegs (or out.max) stopped it: the caller cuts the rest later;
 *  - SEG_*: dropped (nothing written outside the output slots).
 * The output slots must not overlap the packet; every segment is at most MAX_INNER bytes and
 * carries at most gso_size payload bytes.
 */
export function segmentPacket(
  buf: Uint8Array,
  off: number,
  len: number,
  vnetLen: number,
  out: Segments,
  dstOff: number,
  stride: number,
  copyPayload: boolean,
  /** At most this many segments (and at most out.max); the rest is left for another call. */
  maxSegs = out.max,
  /** The first segment to cut (0: the packet's first). */
  from = 0,
): number {
  out.count = 0;
  out.total = 0;
  if ((vnetLen !== 10 && vnetLen !== 12) || off < 0 || len < vnetLen || off + len > buf.length) return SEG_MALFORMED;
  const flags = buf[off];
  const gsoType = buf[off + 1] & ~VNET_GSO_ECN & 0xff;
  const gsoSize = buf[off + 4] | (buf[off + 5] << 8);
  const cStart = buf[off + 6] | (buf[off + 7] << 8);
  const cOff = buf[off + 8] | (buf[off + 9] << 8);
  const p = off + vnetLen;
  const n = len - vnetLen;
  if (gsoType === VNET_GSO_NONE) {
    if ((flags & VNET_F_NEEDS_CSUM) !== 0 && !completeChecksum(buf, p, n, cStart, cOff)) return SEG_MALFORMED;
    return 0;
  }
  if (gsoType !== VNET_GSO_TCPV4 && gsoType !== VNET_GSO_TCPV6 && gsoType !== VNET_GSO_UDP_L4) return SEG_UNSUPPORTED;
  if (n < 1) return SEG_MALFORMED;
  const v = buf[p] >> 4;
  let ip: number;
  let proto: number;
  if (v === 4) {
    if (gsoType === VNET_GSO_TCPV6 || n < 20) return SEG_MALFORMED;
    ip = (buf[p] & 15) * 4;
    if (ip < 20 || ip > n || rd16(buf, p + 2) !== n) return SEG_MALFORMED;
    if (((buf[p + 6] & 0x3f) | buf[p + 7]) !== 0) return SEG_MALFORMED; // a fragment
    proto = buf[p + 9];
  } else if (v === 6) {
    if (gsoType === VNET_GSO_TCPV4 || n < 40) return SEG_MALFORMED;
    ip = 40;
    if (rd16(buf, p + 4) + 40 !== n) return SEG_MALFORMED;
    proto = buf[p + 6];
    if (proto !== 6 && proto !== 17) return SEG_UNSUPPORTED; // extension headers
  } else return SEG_MALFORMED;
  const udp = gsoType === VNET_GSO_UDP_L4;
  if (proto !== (udp ? 17 : 6)) return SEG_MALFORMED;
  if ((flags & VNET_F_NEEDS_CSUM) !== 0 && (cStart !== ip || cOff !== (udp ? 6 : 16))) return SEG_MALFORMED;
  const t = p + ip;
  let th: number;
  if (udp) {
    th = 8;
    if (ip + 8 > n) return SEG_MALFORMED;
  } else {
    if (ip + 20 > n) return SEG_MALFORMED;
    th = (buf[t + 12] >> 4) * 4;
    if (th < 20 || ip + th > n) return SEG_MALFORMED;
  }
  if (gsoSize === 0) return SEG_MALFORMED;
  const hl = ip + th;
  const payload = n - hl;
  const first = payload < gsoSize ? payload : gsoSize;
  if (hl + first > MAX_INNER) return SEG_TOO_BIG;
  const segs = payload === 0 ? 1 : Math.ceil(payload / gsoSize);
  const room = maxSegs < out.max ? maxSegs : out.max;
  const count = segs - from < room ? segs - from : room;
  const need = copyPayload ? hl + first : hl;
  if (from < 0 || count < 1 || stride < need || dstOff < 0) return SEG_NO_ROOM;
  const dstEnd = dstOff + (count - 1) * stride + need;
  if (dstEnd > buf.length || (dstOff < off + len && off < dstEnd)) return SEG_NO_ROOM;

  const v6 = v === 6;
  const aSum = addrSum(buf, p, v6) + proto;
  const id0 = v6 ? 0 : rd16(buf, p + 4);
  const seq0 = udp ? 0 : rd32(buf, t + 4);
  const fl = udp ? 0 : buf[t + 13];
  for (let i = 0; i < count; i++) {
    const k = from + i; // the segment's index in the packet
    const d = dstOff + i * stride;
    const ps = p + hl + k * gsoSize;
    const left = payload - k * gsoSize;
    const pl = left < gsoSize ? left : gsoSize;
    buf.copyWithin(d, p, p + hl);
    if (copyPayload) buf.copyWithin(d + hl, ps, ps + pl);
    const segLen = hl + pl;
    if (v6) wr16(buf, d + 4, segLen - 40);
    else {
      wr16(buf, d + 2, segLen);
      wr16(buf, d + 4, (id0 + k) & 0xffff);
      setIpv4Checksum(buf, d, ip);
    }
    const dt = d + ip;
    let c: number;
    if (udp) {
      wr16(buf, dt + 4, 8 + pl);
      buf[dt + 6] = 0;
      buf[dt + 7] = 0;
      c = ~fold16(sumBytes32(buf, ps, pl, sumBytes32(buf, dt, 8, fold16(aSum + 8 + pl)))) & 0xffff;
      if (c === 0) c = 0xffff;
      wr16(buf, dt + 6, c);
    } else {
      wr32(buf, dt + 4, (seq0 + k * gsoSize) >>> 0);
      let f = fl;
      if (k > 0) f &= ~TCP_CWR;
      if (k < segs - 1) f &= ~(TCP_FIN | TCP_PSH);
      buf[dt + 13] = f;
      buf[dt + 16] = 0;
      buf[dt + 17] = 0;
      c = ~fold16(sumBytes32(buf, ps, pl, sumBytes32(buf, dt, th, fold16(aSum + th + pl)))) & 0xffff;
      wr16(buf, dt + 16, c);
    }
    out.off[i] = d;
    out.len[i] = copyPayload ? segLen : hl;
    out.payOff[i] = ps;
    out.payLen[i] = pl;
  }
  out.count = count;
  out.total = segs;
  return count;
}

/** How many packets one read from a TUN queue opened with a virtio header (vnetLen bytes) stands
 * for: the segments of a TCP or UDP super-packet, else 1 (also when its headers cannot be read:
 * it would have been dropped as one). For counting what nobody will read (a dead worker's
 * queues: src/control/workers.ts), not for cutting: nothing is validated beyond what the count
 * needs. The read must be whole (not cut short by a small buffer). */
export function readPacketCount(buf: Uint8Array, off: number, len: number, vnetLen: number): number {
  if (vnetLen === 0 || len <= vnetLen || off < 0 || off + len > buf.length) return 1;
  const gsoType = buf[off + 1] & ~VNET_GSO_ECN & 0xff;
  const gsoSize = buf[off + 4] | (buf[off + 5] << 8);
  if (gsoType === VNET_GSO_NONE || gsoSize === 0) return 1;
  const p = off + vnetLen;
  const n = len - vnetLen;
  const v = buf[p] >> 4;
  const ip = v === 4 ? (buf[p] & 15) * 4 : v === 6 ? 40 : 0;
  if (ip === 0 || ip + 20 > n) return 1;
  const th = gsoType === VNET_GSO_UDP_L4 ? 8 : (buf[p + ip + 12] >> 4) * 4;
  const payload = n - ip - th;
  return payload <= gsoSize ? 1 : Math.ceil(payload / gsoSize);
}

/** Tallies `n` reads from a TUN queue that nobody will read (a dead worker's), read i at
 * buf[i * slotSize, + lens[i]) behind a virtio header of vnetLen bytes (0: none): into tally[1]
 * the kernel's IPv6 link-local chatter (never traffic: drop reason link_local), into tally[0]
 * the packets lost, a super-packet as its segments (readPacketCount). `key`: scratch. */
export function tallyDrained(buf: Uint8Array, slotSize: number, lens: Int32Array, n: number, vnetLen: number, key: Uint32Array, tally: number[]): void {
  for (let i = 0; i < n; i++) {
    const off = i * slotSize;
    const len = lens[i];
    if (flowKeyFromIp(buf, off + vnetLen, len - vnetLen, key) && isLinkLocal6(key)) tally[1]++;
    else tally[0] += readPacketCount(buf, off, len, vnetLen);
  }
}
