// The USO send tier of --offload on (docs/architecture.md "TUN offloads"; the device:
// src/io/usotun.ts), one of the tiers of src/io/device.ts: a super-packet read from gwo-/gwi- is cut here into complete segments,
// byte for byte those the raw-socket tier sends (segmentPacket, src/wire/segment.ts), but laid out
// back to back, each behind a copy of its flow's Geneve header, in an area of the reader's buffer:
//
//   [USO header][Geneve][segment 1][Geneve][segment 2] ... [Geneve][segment n]
//
// so that the whole run goes to the USO device as one UDP GSO packet (src/wire/uso.ts) and the
// kernel sends each [Geneve][segment] as its own datagram. A super-packet with more than fit in
// 64 KiB goes in several such writes: the header of the next write is put over the tail of the
// segment before it, which the previous write has already handed to the kernel.
//
// A super-packet of more than USO_MAX_SEGS segments (a peer with a small MSS: about 120 at MSS
// 536) is cut and sent in chunks of at most USO_MAX_SEGS, one after the other, each laid out the
// same way in the same area.
//
// If a write fails, its segments and all the following ones go through the raw socket one at a
// time (their outer headers put the same way over the tail of the segment before), counted in
// `errors`: nothing is lost or sent twice and the flow stays in order. Nothing is allocated.
//
// It knows no flow table and no counters: the data plane looked the flow up (its Geneve header is
// in place before `first`) and reads the outcome of send() from the tallies here afterwards.

import type { NativeAddon } from './native';
import { RAW_META_DST, RAW_META_LEN, RAW_META_OFF, RAW_META_STRIDE, TUNW_META_FD, TUNW_META_LEN, TUNW_META_OFF, TUNW_META_STRIDE } from './native';
import { segmentPacket, Segments } from '../wire/segment';
import { USO_HDR_LEN, USO_MAX_PAYLOAD, writeUsoHeader } from '../wire/uso';
import { VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4, VNET_HDR_LEN } from '../wire/virtio';
import { writeOuterIpUdp, OUTER_HEADER_LEN } from '../wire/outer';
import { GENEVE_PORT } from '../wire/geneve';
import { FLOW_HEADER_MAX } from '../wire/sizes';
import { SendOutcome } from './outcome';

/** Segments cut at a time (as many as the raw tier's slots): a chunk of a super-packet. */
export const USO_MAX_SEGS = 64;
/** Largest inner IP + transport headers of a segment (IPv4 with options 60 + TCP 60). */
const MAX_SEG_HEADERS = 120;
/** Bytes of the area a chunk is laid out in: the first header and Geneve header, a copy of the
 * Geneve and inner headers per segment, and the payload of a 64 KiB super-packet. */
export const USO_AREA = USO_HDR_LEN + FLOW_HEADER_MAX + USO_MAX_SEGS * (FLOW_HEADER_MAX + MAX_SEG_HEADERS) + 65536;

/** Can a super-packet with virtio GSO type byte `gsoType` and n inner bytes go to the USO tier
 * (before its flow is known)? TCP and UDP GSO only. */
export function usoCandidate(gsoType: number, n: number): boolean {
  const gso = gsoType & ~VNET_GSO_ECN & 0xff;
  return (gso === VNET_GSO_TCPV4 || gso === VNET_GSO_TCPV6 || gso === VNET_GSO_UDP_L4) && n >= 20;
}

export class UsoSender {
  private readonly segs = new Segments(USO_MAX_SEGS);
  private readonly wMeta = new Int32Array(TUNW_META_STRIDE);
  private readonly rMeta = new Int32Array(RAW_META_STRIDE);
  private readonly rStatus = new Int32Array(1);
  /** Where segment 1 goes: room for the first USO header and the longest Geneve header before it.
   * The caller puts the flow's Geneve header so that it ends here before send(). */
  readonly first: number;
  /** Cumulative (the caller moves them into its counters and zeroes them): super-packets sent
   * this way, their segments written to the device, writes the device refused, super-packets of
   * more than USO_MAX_SEGS segments. */
  supers = 0;
  segments = 0;
  errors = 0;
  long = 0;

  constructor(
    private readonly nat: NativeAddon,
    /** This worker's queue of the USO device. */
    private readonly fd: number,
    private readonly rawFd: number,
    /** The area: buf[area, area + USO_AREA) of the buffer passed to send(). */
    area: number,
    /** What send() did with the segments (sent, refused, dropped), for the caller's counters. */
    private readonly out: SendOutcome,
  ) {
    this.first = area + USO_HDR_LEN + FLOW_HEADER_MAX;
  }

  /** A super-packet behind its virtio header at b[off, off+len) (usoCandidate), of a flow whose
   * Geneve header (h bytes) ends at `first`, to be sent from `local` to GWLB `gwlb`:`port`.
   * Returns its segments, every one sent or dropped (`out` says which), or 0 to leave it to the
   * raw-socket tier (one we cannot cut or that gains nothing: that tier then counts it under its
   * reason, or sends it). What waits for the raw socket must have been sent before (a flow stays
   * in order). */
  send(b: Uint8Array, off: number, len: number, h: number, local: number, gwlb: number, port: number): number {
    const gso = b[off + 1] & ~VNET_GSO_ECN & 0xff;
    const p = off + VNET_HDR_LEN;
    const x = this.first;
    // The inner headers' length: what segmentPacket copies in front of every segment.
    const v6 = b[p] >> 4 === 6;
    const ip = v6 ? 40 : (b[p] & 15) * 4;
    const hl = ip + (gso === VNET_GSO_UDP_L4 ? 8 : (b[p + ip + 12] >> 4) * 4);
    const gsoSize = b[off + 4] | (b[off + 5] << 8);
    const stride = h + hl + gsoSize;
    const segs = this.segs;
    let r = segmentPacket(b, off, len, VNET_HDR_LEN, segs, x, stride, true, USO_MAX_SEGS);
    const total = segs.total;
    // One segment gains nothing here; an error is counted by the raw tier's cut.
    if (r < 1 || total < 2 || segs.len[0] !== hl + gsoSize) return 0;
    const o = this.out;
    o.clear();
    const per = Math.min(USO_MAX_SEGS, Math.floor(USO_MAX_PAYLOAD / stride));
    const m = this.wMeta;
    this.supers += 1;
    if (total > USO_MAX_SEGS) this.long += 1;
    let raw = false; // a write failed: the rest of the super-packet goes through the raw socket
    for (let from = 0; ; ) {
      // The chunk's segments (from..from+r-1 of the packet) are at x + k*stride; each gets the
      // flow's Geneve header in front (the first one's is in place, before x).
      for (let k = 1; k < r; k++) b.copyWithin(x + k * stride - h, x - h, x);
      if (raw) this.sendRawFrom(b, 0, r, h, local, gwlb, port);
      for (let i = 0; i < r && !raw; i += per) {
        const j = i + per < r ? i + per : r;
        const payload = (j - i - 1) * stride + h + segs.len[j - 1];
        const at = x - h + i * stride - USO_HDR_LEN;
        writeUsoHeader(b, at, local, gwlb, port, GENEVE_PORT, payload, stride);
        m[TUNW_META_FD] = this.fd;
        m[TUNW_META_OFF] = at;
        m[TUNW_META_LEN] = USO_HDR_LEN + payload;
        this.nat.tunWrite(b, m, 1);
        if (m[TUNW_META_LEN] < 0) {
          this.errors += 1;
          raw = true;
          this.sendRawFrom(b, i, r, h, local, gwlb, port);
          break;
        }
        let bytes = 0;
        for (let k = i; k < j; k++) bytes += segs.len[k];
        o.sent(j - i, bytes, bytes + (j - i) * (OUTER_HEADER_LEN + h));
        this.segments += j - i;
      }
      from += r;
      if (from >= total) break;
      r = segmentPacket(b, off, len, VNET_HDR_LEN, segs, x, stride, true, USO_MAX_SEGS, from);
      if (r < 1) {
        // Not expected (the first chunk passed every check): the rest is counted, never looped on.
        o.malformed += total - from;
        break;
      }
    }
    return total;
  }

  /** Segments i..r-1 through the raw socket, one datagram at a time, in order. */
  private sendRawFrom(b: Uint8Array, i: number, r: number, h: number, local: number, gwlb: number, port: number): void {
    const o = this.out;
    const segs = this.segs;
    const m = this.rMeta;
    for (let k = i; k < r; k++) {
      const start = segs.off[k] - h - OUTER_HEADER_LEN;
      writeOuterIpUdp(b, start, local, gwlb, port, GENEVE_PORT, h + segs.len[k]);
      m[RAW_META_OFF] = start;
      m[RAW_META_LEN] = OUTER_HEADER_LEN + h + segs.len[k];
      m[RAW_META_DST] = gwlb;
      const done = this.nat.rawSend(this.rawFd, b, m, 1, this.rStatus);
      const st = this.rStatus[0];
      if (done === 1 && st === 0) o.sent(1, segs.len[k], m[RAW_META_LEN]);
      else if (done === 1) o.refused += 1; // refused alone
      else o.busy += 1; // the queue was full
    }
  }
}
