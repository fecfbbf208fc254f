// Runs TcpCoalescer and segmentPacket on plain arrays of packets, for the offload tests, the
// fuzzer and the benchmark. Test code: allocates freely.

import { Segments, TcpCoalescer, segmentPacket } from '../../../src/wire/offload';

export interface Unit {
  /** Batch indices of the packets in the unit, in order. */
  members: number[];
  /** Super-packet with its virtio header (units of 2 or more). */
  bytes?: Uint8Array;
}

/** Lays the packets out in one buffer (odd offsets too), coalesces them, and returns the units.
 * Checks that the input bytes were not changed. */
export function coalesce(pkts: Uint8Array[], groups?: number[], outCap = 1 << 20, vnetLen = 10): Unit[] {
  const c = new TcpCoalescer(Math.max(1, pkts.length), vnetLen);
  let at = 3;
  const offs: number[] = [];
  for (let i = 0; i < pkts.length; i++) {
    offs.push(at);
    at += pkts[i].length + 5 + (i % 4);
  }
  const outOff = at + 16;
  const buf = new Uint8Array(outOff + outCap + 16);
  for (let i = 0; i < pkts.length; i++) {
    buf.set(pkts[i], offs[i]);
    c.off[i] = offs[i];
    c.len[i] = pkts[i].length;
    c.group[i] = groups?.[i] ?? 0;
  }
  const before = buf.slice(0, outOff);
  const n = c.run(buf, pkts.length, outOff, outCap);
  if (Buffer.compare(before, buf.subarray(0, outOff)) !== 0) throw new Error('coalesce changed its input');
  const units: Unit[] = [];
  for (let u = 0; u < n; u++) {
    const members: number[] = [];
    for (let i = c.unitHead[u]; i >= 0; i = c.next[i]) members.push(i);
    if (members.length !== c.unitPkts[u]) throw new Error('unit length disagrees with its chain');
    const unit: Unit = { members };
    if (members.length > 1) {
      if (c.unitOff[u] < outOff || c.unitOff[u] + c.unitLen[u] > outOff + c.outUsed) throw new Error('super-packet outside the output area');
      unit.bytes = buf.slice(c.unitOff[u], c.unitOff[u] + c.unitLen[u]);
    } else if (c.unitOff[u] !== -1) throw new Error('single packet with an output offset');
    units.push(unit);
  }
  return units;
}

/** Splits a virtio header + packet; returns the segments (copied out), or the SEG_* code. With
 * copyPayload false the segments are reassembled from headers and payload slices. With `chunks`,
 * all the segments, cut maxSegs at a time into the same slots (segmentPacket's `from`); else the
 * first maxSegs. */
export function split(pkt: Uint8Array, copyPayload: boolean, vnetLen = 10, maxSegs = 256, stride = 9000, chunks = false): Uint8Array[] | number {
  const off = 7;
  const dstOff = off + pkt.length + 9;
  const buf = new Uint8Array(dstOff + maxSegs * stride + 32);
  buf.set(pkt, off);
  const out = new Segments(maxSegs);
  const segs: Uint8Array[] = [];
  for (let from = 0; ; ) {
    const r = segmentPacket(buf, off, pkt.length, vnetLen, out, dstOff, stride, copyPayload, maxSegs, from);
    if (r < 0) return r;
    if (r === 0) return [buf.slice(off + vnetLen, off + pkt.length)];
    if (out.count !== r || out.total < from + r) throw new Error('count disagrees');
    segs.push(...copyOut(buf, out, r, copyPayload));
    from += r;
    if (!chunks || from === out.total) return segs;
  }
}

function copyOut(buf: Uint8Array, out: Segments, r: number, copyPayload: boolean): Uint8Array[] {
  const segs: Uint8Array[] = [];
  for (let k = 0; k < r; k++) {
    const h = buf.subarray(out.off[k], out.off[k] + out.len[k]);
    if (copyPayload) segs.push(h.slice());
    else {
      const s = new Uint8Array(out.len[k] + out.payLen[k]);
      s.set(h);
      s.set(buf.subarray(out.payOff[k], out.payOff[k] + out.payLen[k]), out.len[k]);
      segs.push(s);
    }
  }
  return segs;
}
