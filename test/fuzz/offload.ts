// Fuzz target of the TCP offload code (src/wire/offload.ts): random and malformed batches for
// TcpCoalescer.run, random and malformed super-packets and virtio headers for segmentPacket.
// Invariants checked on every case:
//   - nothing throws; results are known values;
//   - nothing is written outside the output area / output slots (guard bytes around everything
//     stay as they were; the input is untouched, except a completed checksum field in place);
//   - coalescing: units partition the batch, and every super-packet splits back into exactly its
//     packets, byte for byte;
//   - segmentation: every segment is at most MAX_INNER bytes with at most gso_size payload bytes,
//     its lengths and checksums are valid (plain reference sums), and the payloads put together are
//     the super-packet's payload.
//
//   node dist/test/fuzz/offload.js [--seconds N] [--seed S]
// test/unit/offload.test.ts runs a few thousand cases with a fixed seed. Test code: allocates freely.

import { parseArgs } from 'node:util';
import { MAX_INNER, SEG_ERROR_NAMES, Segments, TcpCoalescer, segmentPacket } from '../../src/wire/offload';
import { VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4, writeVnetHdr } from '../../src/wire/virtio';
import { buildSeg, checkPacket, refFold, refSum, stream } from '../../src/testkit/tcp';
import { Rng } from './gen';

export interface OffloadFuzzResult {
  cases: number;
  merged: number;
  segmented: number;
  failures: string[];
}

const GUARD = 0xa5;

function mutateBytes(rng: Rng, p: Uint8Array): Uint8Array {
  let q: Uint8Array = p.slice();
  const k = rng.int(6);
  if (k === 0 && q.length > 0) q = q.slice(0, rng.int(q.length));
  else if (k === 1) {
    const r = new Uint8Array(q.length + rng.range(1, 8));
    r.set(q);
    q = r;
  } else if (q.length > 0) {
    for (let n = rng.range(1, 3); n > 0; n--) q[rng.int(Math.min(q.length, rng.chance(0.7) ? 80 : q.length))] ^= 1 << rng.int(8);
  }
  return q;
}

function genBatch(rng: Rng): { pkts: Uint8Array[]; groups: number[] } {
  const pkts: Uint8Array[] = [];
  const groups: number[] = [];
  const n = rng.range(1, 64);
  const flows = rng.range(1, 4);
  const streams = [];
  for (let f = 0; f < flows; f++) {
    const v6 = rng.chance(0.5);
    const mss = rng.chance(0.3) ? rng.range(1, 64) : rng.range(500, 1500);
    streams.push({
      segs: stream(
        { v6, sport: 1000 + f, seq: rng.u32(), id: rng.int(65536), options: rng.chance(0.5) ? new Uint8Array([1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]) : undefined },
        rng.range(1, 40),
        mss,
        rng.range(1, mss),
        rng.pick([0x10, 0x18, 0x11]),
      ),
      at: 0,
      group: rng.int(2),
    });
  }
  while (pkts.length < n) {
    const s = rng.pick(streams);
    const k = rng.int(100);
    if (k < 75 && s.at < s.segs.length) {
      const p = s.segs[s.at++];
      pkts.push(rng.chance(0.1) ? mutateBytes(rng, p) : p);
      groups.push(rng.chance(0.05) ? 2 : s.group);
    } else if (k < 90) {
      pkts.push(buildSeg({ v6: rng.chance(0.5), udp: rng.chance(0.5), sport: 1000 + rng.int(4), payload: rng.bytes(rng.int(100)), flags: rng.int(256) }));
      groups.push(rng.int(3));
    } else {
      pkts.push(rng.bytes(rng.int(rng.chance(0.5) ? 60 : 400)));
      groups.push(rng.int(3));
    }
    if (s.at >= s.segs.length && rng.chance(0.2)) s.at = 0;
  }
  return { pkts, groups };
}

function sameRange(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  if (to <= from) return true;
  return Buffer.compare(a.subarray(from, to), b.subarray(from, to)) === 0;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** One coalescing case; returns the violations and how many units were super-packets. */
function coalesceCase(rng: Rng, c: TcpCoalescer, split: Segments, vl: number): { v: string[]; merged: number } {
  const v: string[] = [];
  const { pkts, groups } = genBatch(rng);
  let at = rng.int(4);
  const offs: number[] = [];
  for (const p of pkts) {
    offs.push(at);
    at += p.length + rng.int(4);
  }
  const outCap = rng.chance(0.2) ? rng.int(20000) : 1 << 18;
  const outOff = at + rng.int(8);
  const buf = new Uint8Array(outOff + outCap + 64 + 8600 * 64).fill(GUARD);
  for (let i = 0; i < pkts.length; i++) {
    buf.set(pkts[i], offs[i]);
    c.off[i] = offs[i];
    c.len[i] = pkts[i].length;
    c.group[i] = groups[i];
  }
  const before = buf.slice();
  const units = c.run(buf, pkts.length, outOff, outCap);
  if (c.outUsed < 0 || c.outUsed > outCap) v.push(`outUsed ${c.outUsed} of ${outCap}`);
  const end = outOff + outCap + 64;
  if (!sameRange(buf, before, 0, outOff) || !sameRange(buf, before, outOff + c.outUsed, end)) v.push('coalesce wrote outside its output');
  const seen = new Uint8Array(pkts.length);
  let merged = 0;
  const slots = outOff + outCap + 64;
  for (let u = 0; u < units; u++) {
    const mem: number[] = [];
    for (let i = c.unitHead[u]; i >= 0 && mem.length <= pkts.length; i = c.next[i]) mem.push(i);
    if (mem.length !== c.unitPkts[u]) v.push(`unit ${u}: chain ${mem.length} != ${c.unitPkts[u]}`);
    for (const m of mem) {
      if (seen[m]) v.push(`packet ${m} twice`);
      seen[m] = 1;
    }
    if (mem.length < 2) continue;
    merged++;
    if (c.unitLen[u] > 65535 + vl) v.push(`super-packet of ${c.unitLen[u]} bytes`);
    const copy = rng.chance(0.5);
    const r = segmentPacket(buf, c.unitOff[u], c.unitLen[u], vl, split, slots, 9000, copy);
    if (r !== mem.length) {
      v.push(`unit ${u}: split gave ${r} for ${mem.length} packets`);
      continue;
    }
    for (let k = 0; k < r; k++) {
      const h = buf.subarray(split.off[k], split.off[k] + split.len[k]);
      const s = copy ? h : Buffer.concat([h, buf.subarray(split.payOff[k], split.payOff[k] + split.payLen[k])]);
      if (!bytesEqual(s, pkts[mem[k]])) v.push(`unit ${u} segment ${k} differs from packet ${mem[k]}`);
    }
  }
  for (let i = 0; i < pkts.length; i++) if (!seen[i]) v.push(`packet ${i} in no unit`);
  return { v, merged };
}

function genSuper(rng: Rng, vl: number): Uint8Array {
  const v6 = rng.chance(0.5);
  const udp = rng.chance(0.25);
  const p = buildSeg({
    v6,
    udp,
    options: rng.chance(0.5) ? new Uint8Array(rng.int(11) * 4) : undefined,
    ipOptions: !v6 && rng.chance(0.1) ? new Uint8Array([1, 1, 1, 0]) : undefined,
    payload: rng.bytes(rng.chance(0.2) ? rng.int(100) : rng.int(40000)),
    flags: rng.int(256),
    seq: rng.u32(),
    id: rng.int(65536),
  });
  const ip = v6 ? 40 : (p[0] & 15) * 4;
  const b = new Uint8Array(vl + p.length);
  const gsoType = rng.chance(0.8) ? (udp ? VNET_GSO_UDP_L4 : v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4) : rng.int(256);
  const gso = rng.chance(0.8) ? rng.range(1, 9000) : rng.int(65536);
  writeVnetHdr(b, 0, rng.chance(0.9) ? 1 : rng.int(256), gsoType, rng.int(65536), gso, rng.chance(0.9) ? ip : rng.int(200), rng.chance(0.9) ? (udp ? 6 : 16) : rng.int(40));
  b.set(p, vl);
  if (rng.chance(0.3)) return mutateBytes(rng, b);
  return b;
}

function segmentCase(rng: Rng, out: Segments): { v: string[]; ok: boolean } {
  const v: string[] = [];
  const vl = rng.chance(0.9) ? 10 : rng.pick([12, 8, 0]);
  const sup = genSuper(rng, vl === 10 || vl === 12 ? vl : 10);
  const off = rng.int(16);
  const copy = rng.chance(0.5);
  const stride = rng.chance(0.8) ? 9000 : rng.int(3000);
  const slots = rng.chance(0.9) ? out.max : rng.int(out.max);
  const dstOff = off + sup.length + rng.int(16);
  const buf = new Uint8Array(dstOff + slots * stride + 64).fill(GUARD);
  buf.set(sup, off);
  const before = buf.slice();
  const seg = new Segments(slots);
  const r = segmentPacket(buf, off, sup.length, vl, seg, dstOff, stride, copy);
  if (!(Number.isInteger(r) && r >= -(SEG_ERROR_NAMES.length - 1))) v.push(`unknown result ${r}`);
  // Nothing outside the slots changes, but a completed checksum field (result 0, in place).
  const p = off + vl;
  const cField = p + (sup[6] | (sup[7] << 8)) + (sup[8] | (sup[9] << 8));
  // Compare the gaps between what may have been written.
  let from = 0;
  let bad = false;
  if (r > 0) {
    for (let k = 0; k < r; k++) {
      bad ||= !sameRange(buf, before, from, dstOff + k * stride);
      from = dstOff + k * stride + seg.len[k];
    }
  } else if (r === 0 && (sup[0] & 1) !== 0) {
    bad ||= !sameRange(buf, before, 0, cField);
    from = cField + 2;
  }
  bad ||= !sameRange(buf, before, from, buf.length);
  if (bad) v.push(`segment wrote outside its output (result ${r})`);
  if (r === 0 && (sup[0] & 1) !== 0) {
    // The field held the pseudo-header sum: the checksum is the complement of the sum from
    // csum_start to the end with that field, 0 written as 0xffff.
    const start = sup[6] | (sup[7] << 8);
    let want = ~refFold(refSum(before, p + start, off + sup.length - p - start)) & 0xffff;
    if (want === 0) want = 0xffff;
    if (((buf[cField] << 8) | buf[cField + 1]) !== want) v.push('completed checksum is wrong');
  }
  if (r > 0) {
    // A packet of more segments than the slots is cut in chunks (from = segments cut so far),
    // each call writing only its slots; together they cover the payload once, in order.
    const gso = sup[4] | (sup[5] << 8);
    const all = seg.total;
    if (!(all >= r)) v.push(`total ${all} < ${r} cut`);
    const firstPay = seg.payOff[0];
    let total = 0;
    let cut = 0;
    let next = -1;
    for (let n = r; ; ) {
      for (let k = 0; k < n; k++) {
        const at = cut + k;
        if (seg.payLen[k] > gso) v.push(`segment ${at}: ${seg.payLen[k]} payload bytes > gso_size ${gso}`);
        if (seg.payOff[k] < p || seg.payOff[k] + seg.payLen[k] > off + sup.length) v.push(`segment ${at}: payload outside the packet`);
        const s = copy ? buf.slice(seg.off[k], seg.off[k] + seg.len[k]) : Buffer.concat([buf.subarray(seg.off[k], seg.off[k] + seg.len[k]), buf.subarray(seg.payOff[k], seg.payOff[k] + seg.payLen[k])]);
        if (s.length > MAX_INNER) v.push(`segment ${at}: ${s.length} bytes`);
        const why = checkPacket(s);
        if (why !== '') v.push(`segment ${at}: ${why}`);
        if (copy && !bytesEqual(s.subarray(s.length - seg.payLen[k]), buf.subarray(seg.payOff[k], seg.payOff[k] + seg.payLen[k]))) v.push(`segment ${at}: payload differs`);
        total += seg.payLen[k];
        if (next >= 0 && seg.payOff[k] !== next) v.push(`segment ${at}: payload not contiguous`);
        next = seg.payOff[k] + seg.payLen[k];
      }
      cut += n;
      if (cut >= all || v.length > 0) break;
      if (n !== slots) v.push(`a chunk of ${n} segments with ${all - cut} left and ${slots} slots`);
      const snap = buf.slice();
      n = segmentPacket(buf, off, sup.length, vl, seg, dstOff, stride, copy, slots, cut);
      if (n < 1 || seg.total !== all) {
        v.push(`chunk from ${cut}: result ${n}, total ${seg.total}`);
        break;
      }
      bad = !sameRange(buf, snap, 0, dstOff);
      for (let k = 0; k < n; k++) bad ||= !sameRange(buf, snap, dstOff + k * stride + seg.len[k], k + 1 < n ? dstOff + (k + 1) * stride : buf.length);
      if (bad) v.push(`chunk from ${cut} wrote outside its output`);
    }
    if (v.length === 0 && next !== off + sup.length) v.push('payload not used up');
    if (v.length === 0 && total !== off + sup.length - firstPay) v.push('payload lengths do not add up');
    if (v.length === 0 && cut !== all) v.push(`${cut} of ${all} segments cut`);
  }
  return { v, ok: r > 0 };
}

/** Runs `cases` cases from `seed`; stops collecting after 20 failures. */
export function runOffloadFuzz(seed: number, cases: number, deadline = Infinity): OffloadFuzzResult {
  const rng = new Rng(seed);
  const res: OffloadFuzzResult = { cases: 0, merged: 0, segmented: 0, failures: [] };
  const c10 = new TcpCoalescer(64, 10);
  const c12 = new TcpCoalescer(64, 12);
  const split = new Segments(64);
  const out = new Segments(48);
  for (let i = 0; i < cases && res.failures.length < 20; i++) {
    if ((i & 63) === 0 && Date.now() > deadline) break;
    res.cases++;
    const caseSeed = rng.u32();
    const r = new Rng(caseSeed);
    try {
      if (r.chance(0.5)) {
        const vl = r.chance(0.8) ? 10 : 12;
        const { v, merged } = coalesceCase(r, vl === 10 ? c10 : c12, split, vl);
        res.merged += merged;
        if (v.length > 0) res.failures.push(`coalesce case seed ${caseSeed}: ${v.slice(0, 3).join('; ')}`);
      } else {
        const { v, ok } = segmentCase(r, out);
        if (ok) res.segmented++;
        if (v.length > 0) res.failures.push(`segment case seed ${caseSeed}: ${v.slice(0, 3).join('; ')}`);
      }
    } catch (e) {
      res.failures.push(`case seed ${caseSeed} threw: ${(e as Error).stack ?? String(e)}`);
    }
  }
  return res;
}

function main(): number {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, seed: { type: 'string' } } });
  const seconds = Number(values.seconds ?? '60');
  if (!(seconds > 0 && seconds <= 7 * 86400)) {
    process.stderr.write('usage: offload [--seconds N] [--seed S]\n');
    return 2;
  }
  const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const t0 = Date.now();
  const r = runOffloadFuzz(seed, Number.MAX_SAFE_INTEGER, t0 + seconds * 1000);
  console.log(`offload fuzz: seed ${seed}, ${r.cases} cases in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${r.merged} super-packets, ${r.segmented} packets cut, ${r.failures.length} failures`);
  for (const f of r.failures) console.log(`  ${f}`);
  return r.failures.length > 0 ? 1 : 0;
}

if (require.main === module) process.exitCode = main();
