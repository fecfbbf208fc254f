// TCP offloads done in TypeScript (issue #13, docs/architecture.md "TUN offloads"): coalescing a
// receive batch into TCP super-packets for a TUN write, and cutting super-packets read from a TUN
// back into segments. Pure functions over preallocated typed arrays: no allocation per packet or
// batch, numbers only.
//
// Coalescing (TcpCoalescer.run), the receive side. Input: a batch of inner packets in one buffer
// (offset, length) with a group number each (the caller's identity of "same endpoint and
// byte-identical Geneve header", e.g. the index of the first packet of the batch with that endpoint
// and header: packets of different groups never merge). Output: *units* in batch order of their
// first packet. A unit of one packet goes to the TUN unchanged (behind a zero virtio header, which
// the caller writes in place, see writeVnetNone); a unit of several is built as one super-packet
// with its virtio header into an output area of the same buffer. Packets merge as Linux GRO would
// merge them (tcp_gro_receive and the IPv4/IPv6 GRO checks), plus two stricter rules so that the
// round trip is exact:
//   - same group, same addresses and ports, TCP without IPv4 options or IPv6 extension headers,
//     not a fragment, IP lengths equal to the packet's length;
//   - sequence number = the unit's next one; payload 1..MSS (the first packet's payload is the
//     MSS; a shorter one ends the unit); same TTL/hop limit, TOS/traffic class, flow label, DF;
//     IPv4 IDs incrementing by one;
//   - identical TCP header apart from sequence number, checksum and the flags CWR (first packet
//     only), PSH and FIN (last packet only: they end the unit): same ACK number, window, data
//     offset, reserved bits, options; stricter than GRO: the urgent pointer too; SYN, RST, URG never
//     merge;
//   - valid IPv4 header checksum and valid TCP checksum (GRO validates both; the super-packet's
//     checksum is left to the kernel, so a corrupt segment merged would come out repaired), and
//     neither field 0xffff (the non-canonical form of 0; the split would write 0x0000);
//   - super-packet at most 65535 bytes and within the output area.
// A packet of a flow that does not merge ends that flow's open unit (it is never appended to
// later), so that a flow's packets leave in the order they came: out-of-order segments are not
// merged (GRO does not merge them either, and wireguard-go's prepending would reorder). Flows are
// found through an open-addressing hash table keyed by a 32-bit hash of (group, addresses, ports),
// so a batch costs O(packets) whatever the interleaving. Checksums are verified lazily: only a
// packet about to merge (and its unit's first packet, once) is summed, so traffic that does not
// merge (one packet per flow per batch) costs a parse and a hash, no pass over its payload.
//
// Why super-packets are built by copying into an output area of the same buffer and not written
// from iovecs (first packet, then payload slices): the TUN writer takes one contiguous range per
// packet (src/io/native.ts tunWrite), the copy is a memmove (Uint8Array.copyWithin, 50-80 ns per
// 1448 bytes here), and each payload is read once anyway to verify its checksum (0.5-1 us).
//
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
// Measured (node dist/bench/offload.js --rounds 10000, Node 20, this 2-core machine while other
// builds and tests ran: load average 7-10, so figures are CPU time and vary by +-30% between runs;
// an idle machine should be faster), runs of 32 IPv4 segments of 1448 bytes with timestamps:
//   coalesce, one flow, 32 -> 1 super-packet   0.9-1.3 us per segment (checksum verify + copy)
//   coalesce, 32 flows, nothing merges         70-110 ns per packet (parse, hash, no payload pass)
//   split into complete segments               0.75-1.0 us per segment
//   split, headers only (iovec form)           0.8-0.9 us per segment
//   sumBytes32 / onesSum over 1448 bytes       0.5-1.0 us / 1.1-1.7 us;  copyWithin 50-80 ns
// Against that: the kernel time a TUN write + forward + read of one super-packet saves, 0.9 us per
// 1448-byte segment one by one against 0.09 us as one super-packet (measured with C programs on
// kernel 6.18). Almost all of the JS cost is the one's complement sum over the payload, which the
// coalescer cannot skip (see the checksum rule above) and the split cannot either (each segment
// needs its own checksum).

import { sumBytes32, fold16 } from './checksum32';
import {
  VNET_F_NEEDS_CSUM,
  VNET_GSO_ECN,
  VNET_GSO_NONE,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
  VNET_GSO_UDP_L4,
  writeVnetHdr,
} from './virtio';

/** The largest inner packet (GWLB's limit): no segment is ever longer. */
export const MAX_INNER = 8500;
/** The largest super-packet built (IP total length). */
export const MAX_SUPER = 65535;

const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_PSH = 0x08;
const TCP_URG = 0x20;
const TCP_CWR = 0x80;

function rd16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
function sameBytes(b: Uint8Array, x: number, y: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[x + k] !== b[y + k]) return false;
  return true;
}

/** Writes the IPv4 header checksum of the header at b[ip, ip+ihl). */
function setIpv4Checksum(b: Uint8Array, ip: number, ihl: number): void {
  b[ip + 10] = 0;
  b[ip + 11] = 0;
  wr16(b, ip + 10, ~fold16(sumBytes32(b, ip, ihl, 0)) & 0xffff);
}

/** Unfolded sum of the pseudo-header's addresses (IPv4 or IPv6 at `ip`). */
function addrSum(b: Uint8Array, ip: number, v6: boolean): number {
  return v6 ? sumBytes32(b, ip + 8, 32, 0) : sumBytes32(b, ip + 12, 8, 0);
}

// ---- coalescing -------------------------------------------------------------------------------

const K_OTHER = 0; // not a whole TCP packet we can key: passes through, ends nothing
const K_FLOW = 1; // TCP with a flow key, not mergeable: passes through, ends its flow's unit
const K_CAND = 2; // may merge

export class TcpCoalescer {
  /** Capacity in packets (and units). */
  readonly max: number;
  /** Bytes of the virtio header written in front of each super-packet (10, or 12 for v1). */
  readonly vnetLen: number;

  // Input, filled by the caller: packet i is buf[off[i], off[i]+len[i]) (an IPv4/IPv6 packet).
  readonly off: Int32Array;
  readonly len: Int32Array;
  readonly group: Int32Array;

  // Output of run(): units 0..units-1 in order.
  units = 0;
  /** The unit's first packet. */
  readonly unitHead: Int32Array;
  /** Packets in the unit: 1 = write packet unitHead unchanged; more: a super-packet. */
  readonly unitPkts: Int32Array;
  /** Super-packets: offset of the virtio header in buf, and length (virtio header included). */
  readonly unitOff: Int32Array;
  readonly unitLen: Int32Array;
  /** Per packet: the next packet of its unit, -1 for the last. */
  readonly next: Int32Array;
  /** Bytes of the output area used by the last run. */
  outUsed = 0;

  // Per packet scratch.
  private readonly kind: Uint8Array;
  private readonly ipLen: Int32Array; // IP header length
  private readonly thLen: Int32Array; // TCP header length
  private readonly payLen: Int32Array;
  private readonly hash: Int32Array;
  private readonly unitOf: Int32Array;
  // Per unit scratch.
  private readonly uLast: Int32Array;
  private readonly uBytes: Int32Array; // payload bytes so far
  private readonly uOpen: Uint8Array;
  private readonly uChecked: Uint8Array; // the first packet's checksums verified
  // Flow -> its latest unit.
  private readonly table: Int32Array;
  private readonly mask: number;

  constructor(maxPackets: number, vnetLen = 10) {
    if (!Number.isInteger(maxPackets) || maxPackets < 1 || maxPackets > 65536) throw new RangeError('coalescer: maxPackets must be 1..65536');
    if (vnetLen !== 10 && vnetLen !== 12) throw new RangeError('coalescer: vnetLen must be 10 or 12');
    this.max = maxPackets;
    this.vnetLen = vnetLen;
    this.off = new Int32Array(maxPackets);
    this.len = new Int32Array(maxPackets);
    this.group = new Int32Array(maxPackets);
    this.unitHead = new Int32Array(maxPackets);
    this.unitPkts = new Int32Array(maxPackets);
    this.unitOff = new Int32Array(maxPackets);
    this.unitLen = new Int32Array(maxPackets);
    this.next = new Int32Array(maxPackets);
    this.kind = new Uint8Array(maxPackets);
    this.ipLen = new Int32Array(maxPackets);
    this.thLen = new Int32Array(maxPackets);
    this.payLen = new Int32Array(maxPackets);
    this.hash = new Int32Array(maxPackets);
    this.unitOf = new Int32Array(maxPackets);
    this.uLast = new Int32Array(maxPackets);
    this.uBytes = new Int32Array(maxPackets);
    this.uOpen = new Uint8Array(maxPackets);
    this.uChecked = new Uint8Array(maxPackets);
    let size = 16;
    while (size < maxPackets * 2) size *= 2;
    this.table = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Plans and builds the units of packets 0..count-1 (off/len/group filled by the caller).
   * Super-packets are written to buf[outOff, outOff+outCap), which must not overlap any input
   * packet. Returns the number of units. Never throws on packet contents: a packet that is not
   * understood is a unit of its own. */
  run(buf: Uint8Array, count: number, outOff: number, outCap: number): number {
    if (count > this.max) count = this.max;
    if (count < 0) count = 0;
    if (outOff < 0 || outCap < 0 || outOff + outCap > buf.length) outCap = 0;
    this.table.fill(-1);
    this.units = 0;
    let reserved = 0;
    const vl = this.vnetLen;
    for (let i = 0; i < count; i++) {
      this.next[i] = -1;
      const k = this.classify(buf, i);
      if (k === K_OTHER) {
        this.newUnit(i, false);
        continue;
      }
      const h = this.hash[i];
      let slot = h & this.mask;
      let u = -1;
      for (;;) {
        const t = this.table[slot];
        if (t < 0) break;
        if (this.hash[this.unitHead[t]] === h && this.sameFlow(buf, this.unitHead[t], i)) {
          u = t;
          break;
        }
        slot = (slot + 1) & this.mask;
      }
      if (u >= 0 && k === K_CAND && this.uOpen[u] === 1) {
        const hd = this.unitHead[u];
        const pl = this.payLen[i];
        const hdrs = this.ipLen[hd] + this.thLen[hd];
        // Bytes this append adds to the output area (the whole super-packet when it is the second).
        const add = this.unitPkts[u] === 1 ? vl + hdrs + this.uBytes[u] + pl : pl;
        if (
          hdrs + this.uBytes[u] + pl <= MAX_SUPER &&
          reserved + add <= outCap &&
          this.mergeable(buf, u, hd, i)
        ) {
          if (this.uChecked[u] === 0) {
            this.uChecked[u] = 1;
            if (!this.checksumsValid(buf, hd)) {
              this.uOpen[u] = 0; // the first packet stays alone; i starts a new unit below
              const nu = this.newUnit(i, this.headable(buf, i));
              this.table[slot] = nu;
              continue;
            }
          }
          if (this.checksumsValid(buf, i)) {
            this.next[this.uLast[u]] = i;
            this.uLast[u] = i;
            this.unitPkts[u]++;
            this.uBytes[u] += pl;
            this.unitOf[i] = u;
            reserved += add;
            const f = buf[this.off[i] + this.ipLen[i] + 13];
            if ((f & (TCP_PSH | TCP_FIN)) !== 0 || pl < this.payLen[hd]) this.uOpen[u] = 0;
            continue;
          }
          // A corrupt segment: it goes alone and ends the unit.
          this.uOpen[u] = 0;
          this.table[slot] = this.newUnit(i, false);
          continue;
        }
      }
      if (u >= 0) this.uOpen[u] = 0;
      const nu = this.newUnit(i, k === K_CAND && this.headable(buf, i));
      this.table[slot] = nu;
    }
    this.outUsed = this.build(buf, outOff);
    return this.units;
  }

  private newUnit(i: number, open: boolean): number {
    const u = this.units++;
    this.unitHead[u] = i;
    this.unitPkts[u] = 1;
    this.unitOff[u] = -1;
    this.unitLen[u] = 0;
    this.uLast[u] = i;
    this.uBytes[u] = this.payLen[i];
    this.uOpen[u] = open ? 1 : 0;
    this.uChecked[u] = 0;
    this.unitOf[i] = u;
    return u;
  }

  /** A candidate may start a unit unless it carries PSH or FIN (GRO flushes such a packet at once). */
  private headable(buf: Uint8Array, i: number): boolean {
    return (buf[this.off[i] + this.ipLen[i] + 13] & (TCP_PSH | TCP_FIN)) === 0;
  }

  /** Parses packet i: its kind, header lengths, payload length and flow hash. */
  private classify(buf: Uint8Array, i: number): number {
    const o = this.off[i];
    const n = this.len[i];
    this.kind[i] = K_OTHER;
    this.payLen[i] = 0;
    if (o < 0 || n < 1 || o + n > buf.length) return K_OTHER;
    const v = buf[o] >> 4;
    let ip: number;
    let cand = true;
    if (v === 4) {
      if (n < 20) return K_OTHER;
      ip = (buf[o] & 15) * 4;
      if (ip < 20 || buf[o + 9] !== 6) return K_OTHER;
      if (((buf[o + 6] & 0x1f) | buf[o + 7]) !== 0) return K_OTHER; // a later fragment: no ports
      if (ip !== 20 || (buf[o + 6] & 0x20) !== 0 || rd16(buf, o + 2) !== n) cand = false;
      if (rd16(buf, o + 10) === 0xffff) cand = false;
    } else if (v === 6) {
      if (n < 40 || buf[o + 6] !== 6) return K_OTHER;
      ip = 40;
      if (rd16(buf, o + 4) + 40 !== n) cand = false;
    } else return K_OTHER;
    if (o + ip + 20 > o + n) return K_OTHER;
    const t = o + ip;
    const th = (buf[t + 12] >> 4) * 4;
    if (th < 20 || ip + th > n) cand = false;
    const f = buf[t + 13];
    if ((f & (TCP_SYN | TCP_RST | TCP_URG)) !== 0) cand = false;
    if (rd16(buf, t + 16) === 0xffff) cand = false;
    const pl = n - ip - th;
    if (pl <= 0) cand = false;
    this.ipLen[i] = ip;
    this.thLen[i] = th;
    this.payLen[i] = cand ? pl : 0;
    // Flow hash: group, addresses, ports.
    let h = Math.imul(this.group[i] ^ 0x9e3779b9, 0x85ebca6b);
    const a0 = v === 4 ? o + 12 : o + 8;
    const a1 = v === 4 ? o + 20 : o + 40;
    for (let a = a0; a < a1; a += 4) h = Math.imul(h ^ rd32(buf, a), 0xcc9e2d51) ^ (h >>> 15);
    h = Math.imul(h ^ rd32(buf, t), 0x1b873593);
    h ^= h >>> 16;
    this.hash[i] = h | 0;
    const k = cand ? K_CAND : K_FLOW;
    this.kind[i] = k;
    return k;
  }

  /** Same group, IP version, addresses and ports. */
  private sameFlow(buf: Uint8Array, x: number, y: number): boolean {
    if (this.group[x] !== this.group[y]) return false;
    const ox = this.off[x];
    const oy = this.off[y];
    if (buf[ox] >> 4 !== buf[oy] >> 4) return false;
    const v6 = buf[ox] >> 4 === 6;
    if (!sameBytes(buf, ox + (v6 ? 8 : 12), oy + (v6 ? 8 : 12), v6 ? 32 : 8)) return false;
    return sameBytes(buf, ox + this.ipLen[x], oy + this.ipLen[y], 4);
  }

  /** The header rules for appending candidate i to open unit u whose first packet is hd. */
  private mergeable(buf: Uint8Array, u: number, hd: number, i: number): boolean {
    const a = this.off[hd];
    const b = this.off[i];
    if (this.payLen[i] > this.payLen[hd]) return false;
    if (this.thLen[i] !== this.thLen[hd]) return false;
    if (buf[a] >> 4 === 4) {
      if (buf[a + 1] !== buf[b + 1] || buf[a + 6] !== buf[b + 6] || buf[a + 8] !== buf[b + 8]) return false;
      if (rd16(buf, b + 4) !== ((rd16(buf, a + 4) + this.unitPkts[u]) & 0xffff)) return false;
    } else {
      if (!sameBytes(buf, a, b, 4) || buf[a + 7] !== buf[b + 7]) return false;
    }
    const ta = a + this.ipLen[hd];
    const tb = b + this.ipLen[i];
    if (rd32(buf, tb + 4) !== ((rd32(buf, ta + 4) + this.uBytes[u]) >>> 0)) return false;
    const fb = buf[tb + 13];
    if (((buf[ta + 13] ^ fb) & ~(TCP_CWR | TCP_PSH | TCP_FIN) & 0xff) !== 0 || (fb & TCP_CWR) !== 0) return false;
    // ACK number, data offset and reserved bits, window; urgent pointer; options.
    if (!sameBytes(buf, ta + 8, tb + 8, 5) || !sameBytes(buf, ta + 14, tb + 14, 2)) return false;
    return sameBytes(buf, ta + 18, tb + 18, this.thLen[hd] - 18);
  }

  /** IPv4 header checksum (IPv4) and TCP checksum of packet i are valid. */
  private checksumsValid(buf: Uint8Array, i: number): boolean {
    const o = this.off[i];
    const ip = this.ipLen[i];
    const v6 = buf[o] >> 4 === 6;
    if (!v6 && fold16(sumBytes32(buf, o, ip, 0)) !== 0xffff) return false;
    const tl = this.len[i] - ip;
    const s = sumBytes32(buf, o + ip, tl, addrSum(buf, o, v6) + 6 + tl);
    return fold16(s) === 0xffff;
  }

  /** Writes the super-packets; returns the bytes of the output area used. */
  private build(buf: Uint8Array, outOff: number): number {
    let pos = outOff;
    const vl = this.vnetLen;
    for (let u = 0; u < this.units; u++) {
      if (this.unitPkts[u] < 2) continue;
      const hd = this.unitHead[u];
      const a = this.off[hd];
      const ip = this.ipLen[hd];
      const th = this.thLen[hd];
      const hdrs = ip + th;
      const total = hdrs + this.uBytes[u];
      const v6 = buf[a] >> 4 === 6;
      const cwr = (buf[a + ip + 13] & TCP_CWR) !== 0;
      const gso = (v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4) | (cwr ? VNET_GSO_ECN : 0);
      writeVnetHdr(buf, pos, VNET_F_NEEDS_CSUM, gso, hdrs, this.payLen[hd], ip, 16);
      if (vl === 12) {
        buf[pos + 10] = 0;
        buf[pos + 11] = 0;
      }
      const p = pos + vl;
      buf.copyWithin(p, a, a + hdrs);
      let d = p + hdrs;
      for (let i = hd; i >= 0; i = this.next[i]) {
        const s = this.off[i] + this.ipLen[i] + this.thLen[i];
        buf.copyWithin(d, s, s + this.payLen[i]);
        d += this.payLen[i];
      }
      const t = p + ip;
      buf[t + 13] |= buf[this.off[this.uLast[u]] + this.ipLen[this.uLast[u]] + 13] & (TCP_PSH | TCP_FIN);
      if (v6) wr16(buf, p + 4, total - 40);
      else {
        wr16(buf, p + 2, total);
        setIpv4Checksum(buf, p, ip);
      }
      // NEEDS_CSUM: the folded pseudo-header sum, not complemented.
      wr16(buf, t + 16, fold16(addrSum(buf, p, v6) + 6 + (total - ip)));
      this.unitOff[u] = pos;
      this.unitLen[u] = vl + total;
      pos += vl + total;
    }
    return pos - outOff;
  }
}

// ---- segmentation -----------------------------------------------------------------------------

/** segmentPacket results below 0. */
export const SEG_MALFORMED = -1; // the virtio header does not agree with the packet, or the packet is cut short
export const SEG_UNSUPPORTED = -2; // a GSO type we do not cut (UFO, UDP tunnel), IPv6 extension headers
export const SEG_TOO_BIG = -3; // a segment would be longer than MAX_INNER
export const SEG_NO_ROOM = -4; // more segments than the output holds, or slots too small
/** Names by -result (index 0 unused). */
export const SEG_ERROR_NAMES = ['', 'gso_malformed', 'gso_unsupported', 'gso_too_big', 'gso_no_room'] as const;

/** Where segmentPacket put its segments. */
export class Segments {
  count = 0;
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
 *  - n >= 1: the n segments described in `out`, written at buf[dstOff + k*stride ...): whole
 *    segments when copyPayload, else headers only (payload at out.payOff/payLen in the super-packet);
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
): number {
  out.count = 0;
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
  const need = copyPayload ? hl + first : hl;
  if (segs > out.max || stride < need || dstOff < 0) return SEG_NO_ROOM;
  const dstEnd = dstOff + (segs - 1) * stride + need;
  if (dstEnd > buf.length || (dstOff < off + len && off < dstEnd)) return SEG_NO_ROOM;

  const v6 = v === 6;
  const aSum = addrSum(buf, p, v6) + proto;
  const id0 = v6 ? 0 : rd16(buf, p + 4);
  const seq0 = udp ? 0 : rd32(buf, t + 4);
  const fl = udp ? 0 : buf[t + 13];
  for (let k = 0; k < segs; k++) {
    const d = dstOff + k * stride;
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
    out.off[k] = d;
    out.len[k] = copyPayload ? segLen : hl;
    out.payOff[k] = ps;
    out.payLen[k] = pl;
  }
  out.count = segs;
  return segs;
}
