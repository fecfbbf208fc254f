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
//   - super-packet at most 65535 bytes and within the output area;
//   - payload at most COALESCE_MAX_PAYLOAD bytes (where merging stops paying, see below).
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
// Shared parts and the figures measured: src/wire/offload.ts.

import { sumBytes32, fold16 } from './checksum32';
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6, writeVnetHdr } from './virtio';
import { rd16, rd32, wr16, sameBytes, setIpv4Checksum, addrSum, TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_URG, TCP_CWR, MAX_SUPER } from './offload-common';

// ---- coalescing -------------------------------------------------------------------------------

/** Segments with more payload than this pass through unmerged (they still end their flow's unit).
 *
 * Why (docs/benchmarks.md, "Bulk TCP"): merging saves per-packet kernel work (a TUN write and a
 * forwarding pass per segment, and on the way back a raw send instead of the kernel's UDP tunnel
 * segmentation), about the same whatever the size, but costs a JavaScript checksum pass over the
 * payload here and a software checksum in the kernel's segmentation, both per byte. Measured in one
 * run with UDP tunnel GSO: 1,448-byte segments merged cost 0.95 us less appliance CPU per packet
 * than unmerged, 8,448-byte ones 1.66 us more; the line between them crosses zero near 4,000 bytes.
 * So a standard 1500-byte MTU merges and a 9001-byte jumbo MTU does not. */
export const COALESCE_MAX_PAYLOAD = 4000;

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
    if (pl <= 0 || pl > COALESCE_MAX_PAYLOAD) cand = false;
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

