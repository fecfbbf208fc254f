// Micro-benchmark of the TCP offload code in TypeScript (src/wire/offload.ts; not a test, no root):
//   node dist/bench/offload.js [--rounds 20000] [--json]
// Runs of 32 TCP segments of 1448 payload bytes (IPv4, timestamps option: 52 header bytes), as in
// a bulk transfer. Reports ns of CPU time (process.cpuUsage: steadier than wall time on a shared
// machine) per segment, the median of 5 passes, for:
//   coalesce      one flow, 32 segments -> one super-packet (parse, hash, rules, both checksums
//                 verified, payloads copied)
//   coalesce-miss 32 segments of 32 different flows (nothing merges: parse and hash only)
//   split-copy    a 32-segment super-packet -> 32 complete segments in slots (headers, payload
//                 copied, IPv4 and TCP checksums)
//   split-iov     the same, headers only in the slots, payload left in place (for iovec senders)
// and, for scale, the building blocks over 1448 bytes: sumBytes32, onesSum (byte pairs), and
// Uint8Array.copyWithin.
import { parseArgs } from 'node:util';
import { onesSum } from '../src/testkit/checksum';
import { sumBytes32 } from '../src/wire/checksum32';
import { Segments, TcpCoalescer, segmentPacket } from '../src/wire/offload';
import { stream } from '../src/testkit/tcp';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20000' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 10 || ROUNDS > 10_000_000) {
  console.error('--rounds must be an integer in 10..10000000');
  process.exit(2);
}

const RUN = 32;
const MSS = 1448;
const TS = new Uint8Array([1, 1, 8, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0]);
const SLOT = 9216;

// One buffer: 32 receive slots (inner packet at offset 48 of each, behind a Geneve header), then
// the output area for super-packets.
const buf = new Uint8Array(2 * RUN * SLOT + 70000 + RUN * SLOT);
const OUT = 2 * RUN * SLOT;
const bulk = stream({ options: TS }, RUN, MSS);
const miss = Array.from({ length: RUN }, (_, i) => stream({ options: TS, sport: 1000 + i }, 1, MSS)[0]);
const cBulk = new TcpCoalescer(RUN);
const cMiss = new TcpCoalescer(RUN);
for (let i = 0; i < RUN; i++) {
  buf.set(bulk[i], i * SLOT + 48);
  cBulk.off[i] = i * SLOT + 48;
  cBulk.len[i] = bulk[i].length;
  buf.set(miss[i], (RUN + i) * SLOT + 48);
  cMiss.off[i] = (RUN + i) * SLOT + 48;
  cMiss.len[i] = miss[i].length;
}

// A super-packet to split: the one coalescing builds, copied out of the output area each round is
// not needed (split does not change its input).
if (cBulk.run(buf, RUN, OUT, 70000) !== 1) throw new Error('bench: the run did not coalesce');
const superOff = cBulk.unitOff[0];
const superLen = cBulk.unitLen[0];
const SEGS = OUT + 70000;
const segs = new Segments(RUN);

function median(f: () => number): number {
  const r: number[] = [];
  for (let k = 0; k < 5; k++) r.push(f());
  r.sort((a, b) => a - b);
  return r[2];
}

function time(per: number, body: () => void): number {
  return median(() => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < ROUNDS; i++) body();
    const u = process.cpuUsage(t0);
    return ((u.user + u.system) * 1000) / ROUNDS / per;
  });
}

let sink = 0;
const results: Record<string, number> = {
  coalesce: time(RUN, () => {
    sink += cBulk.run(buf, RUN, OUT, 70000);
  }),
  'coalesce-miss': time(RUN, () => {
    sink += cMiss.run(buf, RUN, OUT, 70000);
  }),
  'split-copy': time(RUN, () => {
    sink += segmentPacket(buf, superOff, superLen, 10, segs, SEGS, SLOT, true);
  }),
  'split-iov': time(RUN, () => {
    sink += segmentPacket(buf, superOff, superLen, 10, segs, SEGS, SLOT, false);
  }),
  sumBytes32: time(1, () => {
    sink += sumBytes32(buf, 48 + 52, MSS, 0);
  }),
  onesSum: time(1, () => {
    sink += onesSum(buf, 48 + 52, MSS, 0);
  }),
  copyWithin: time(1, () => {
    buf.copyWithin(SEGS, 48 + 52, 48 + 52 + MSS);
  }),
};
if (sink === 0.5) console.log('');

if (values.json) console.log(JSON.stringify({ rounds: ROUNDS, run: RUN, mss: MSS, nsPerSegment: results }));
else {
  console.log(`offload micro-benchmark: runs of ${RUN} segments of ${MSS} bytes, ${ROUNDS} rounds, median of 5, CPU time (Node ${process.version})`);
  for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(14)} ${v.toFixed(0).padStart(6)} ns${k.startsWith('co') || k.startsWith('split') ? ' per segment' : ' per 1448 bytes'}`);
}
