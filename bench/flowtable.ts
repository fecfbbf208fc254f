// Micro-benchmark of the shared flow table (not a test):
//   node dist/bench/flowtable.js [--flows 1000000] [--json]
// Fills the table with --flows random IPv4 TCP 5-tuples (single thread), then measures, over --flows
// operations each (in a scattered order, so that caches do not help more than in real traffic):
// insert of new flows, refresh with an unchanged header (what every inbound packet does), refresh
// with a new cookie (locked write), lookup hits in both directions, lookup misses, and a full sweep
// pass in buckets/10 slices. Then, for context: inserts into memory already faulted in, lookups of
// a cache-resident working set (the code's own cost), and the machine's latency of one dependent
// random read over the same memory (the floor of any lookup of a random flow). The per-op figures
// include building the key (reported separately as "keygen"). Reports RSS before creating the
// table and after the run.
import { parseArgs } from 'node:util';
import {
  createFlowTableBuffer,
  FlowTable,
  flowTableBytes,
  UPSERT_EVICTED,
  UPSERT_INSERTED,
  UPSERT_REFRESHED,
} from '../src/flow/table';

const { values } = parseArgs({
  options: {
    flows: { type: 'string', default: '1000000' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(values.flows);
if (!Number.isInteger(N) || N < 1 || N > 1 << 24) {
  console.error('--flows must be an integer in 1..16777216');
  process.exit(2);
}

/** Bijection on 32-bit integers, so flow i maps to distinct (address, port) bits. */
function mix(i: number): number {
  i ^= i >>> 16;
  i = Math.imul(i, 0x7feb352d);
  i ^= i >>> 15;
  i = Math.imul(i, 0x846ca68b);
  i ^= i >>> 16;
  return i >>> 0;
}

/** Flow i: 192.0.2.x:sport -> 198.51.100.y:443, TCP (reversed: the return direction). */
function fillKey(k: Uint32Array, i: number, reversed: boolean): void {
  const x = mix(i);
  const a = 0xc0000200 | (x & 0xff);
  const b = 0xc6336400 | ((x >>> 8) & 0xff);
  const sport = x >>> 16;
  k[0] = 0x00010001;
  k[1] = (4 << 8) | 6;
  if (reversed) {
    k[2] = b;
    k[6] = a;
    k[10] = ((443 << 16) | sport) >>> 0;
  } else {
    k[2] = a;
    k[6] = b;
    k[10] = ((sport << 16) | 443) >>> 0;
  }
}

/** A 40-byte GWLB-like Geneve header whose cookie (last 4 bytes) is `cookie`. */
const hdr = new Uint8Array(64);
hdr.set([0x08, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0x01, 0x08, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8]);
hdr.set([0x01, 0x08, 0x02, 0x02, 9, 9, 9, 9, 9, 9, 9, 9, 0x01, 0x08, 0x03, 0x01], 20);
function setCookie(cookie: number): void {
  hdr[36] = cookie >>> 24;
  hdr[37] = (cookie >>> 16) & 0xff;
  hdr[38] = (cookie >>> 8) & 0xff;
  hdr[39] = cookie & 0xff;
}

/** A step coprime with N: visiting j * STEP mod N scatters the order over all N flows. */
function coprimeStep(n: number): number {
  let s = Math.floor(n * 0.6180339887) | 1;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  while (gcd(s, n) !== 1) s += 2;
  return s;
}

const mb = (b: number): number => Math.round((b / 1048576) * 10) / 10;
const rssBefore = process.memoryUsage().rss;
const sab = createFlowTableBuffer(N);
const t = new FlowTable(sab);
const key = new Uint32Array(11);
const out = new Uint8Array(256);
const now = 1000;
const STEP = coprimeStep(N);
let sink = 0;

function timeIt(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / N;
}

const results: Record<string, number> = {};
let inserted = 0;
let evicted = 0;
let hits = 0;

results.keygen = timeIt(() => {
  for (let i = 0; i < N; i++) {
    fillKey(key, i, (i & 1) === 1);
    setCookie(i);
    sink ^= key[10] ^ hdr[39];
  }
});
results.insert = timeIt(() => {
  for (let i = 0; i < N; i++) {
    fillKey(key, i, false);
    setCookie(i);
    const r = t.upsert(key, hdr, 0, 40, 0xc6120001, 0xc6120a05, 30000 + (i & 0xfff), now);
    if (r === UPSERT_INSERTED) inserted++;
    else if (r === UPSERT_EVICTED) evicted++;
  }
});
const sizeAfterFill = t.size();
let refreshed = 0;
results.refreshSame = timeIt(() => {
  let j = 0;
  for (let n = 0; n < N; n++) {
    j += STEP;
    if (j >= N) j -= N;
    fillKey(key, j, (n & 1) === 1);
    setCookie(j);
    if (t.upsert(key, hdr, 0, 40, 0xc6120001, 0xc6120a05, 30000 + (j & 0xfff), now + 1) === UPSERT_REFRESHED) refreshed++;
  }
});
results.lookupFwd = timeIt(() => {
  let j = 0;
  for (let n = 0; n < N; n++) {
    j += STEP;
    if (j >= N) j -= N;
    fillKey(key, j, false);
    if (t.lookupInto(key, out, 128, now + 2) === 40) hits++;
  }
});
results.lookupRev = timeIt(() => {
  let j = 0;
  for (let n = 0; n < N; n++) {
    j += STEP;
    if (j >= N) j -= N;
    fillKey(key, j, true);
    if (t.lookupInto(key, out, 128, now + 3) === 40) hits++;
  }
});
let falseHits = 0;
results.lookupMiss = timeIt(() => {
  for (let n = 0; n < N; n++) {
    fillKey(key, N + n, (n & 1) === 1);
    if (t.lookupInto(key, out, 128, now + 4) >= 0) falseHits++;
  }
});
results.refreshNewCookie = timeIt(() => {
  let j = 0;
  for (let n = 0; n < N; n++) {
    j += STEP;
    if (j >= N) j -= N;
    fillKey(key, j, false);
    setCookie(j + 1);
    t.upsert(key, hdr, 0, 40, 0xc6120001, 0xc6120a05, 30000 + (j & 0xfff), now + 5);
  }
});
// Insert again into memory that is already faulted in: expire everything, then N new flows.
t.sweep(now + 100000, 0, 0, t.buckets, null);
results.insertPrefaulted = timeIt(() => {
  for (let i = 0; i < N; i++) {
    fillKey(key, N + i, false);
    setCookie(i);
    t.upsert(key, hdr, 0, 40, 0xc6120001, 0xc6120a05, 30000 + (i & 0xfff), now + 100001);
  }
});
// The code's own cost: lookups of only 1000 flows, whose entries stay in the CPU caches.
const HOT = Math.min(1000, N);
results.lookupHot = timeIt(() => {
  for (let n = 0; n < N; n++) {
    fillKey(key, N + (n % HOT), (n & 1) === 1);
    if (t.lookupInto(key, out, 128, now + 100002) < 0) falseHits++;
  }
});
// The machine's floor: one dependent random 4-byte read per op over the same shared memory
// (each address depends on the previous value, as a lookup's entry read depends on its hash).
const raw = new Int32Array(sab);
const lines = Math.floor(raw.length / 16);
results.memLatency = timeIt(() => {
  let x = 0;
  for (let n = 0; n < N; n++) x = raw[(mix(n + (x & 1)) % lines) * 16];
  sink ^= x;
});
// Sweep: one full pass in slices of buckets/10 (as the daemon does every 100 ms); nothing expires.
const budget = Math.max(1, Math.ceil(t.buckets / 10));
let sweptAway = 0;
const s0 = process.hrtime.bigint();
for (let c = 0; c < 10; c++) sweptAway += t.sweep(now + 6, 3500, 1200, budget, (ep) => ep === 0x00010001);
const sweepSliceMs = Number(process.hrtime.bigint() - s0) / 10 / 1e6;
const rssAfter = process.memoryUsage().rss;

const report = {
  flows: N,
  capacity: t.capacity,
  buckets: t.buckets,
  tableMB: mb(flowTableBytes(N)),
  inserted,
  evicted,
  sizeAfterFill,
  refreshed,
  lookupHits: hits,
  lookupExpectedHits: 2 * N,
  falseHits,
  sweptAway,
  nsPerOp: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(v * 10) / 10])),
  sweepSliceMs: Math.round(sweepSliceMs * 100) / 100,
  rssBeforeMB: mb(rssBefore),
  rssAfterMB: mb(rssAfter),
  node: process.version,
  sink: sink & 1,
};

if (values.json) {
  console.log(JSON.stringify(report));
} else {
  console.log(`flow table: ${N} flows, capacity ${t.capacity}, ${t.buckets} buckets, ${report.tableMB} MB shared`);
  console.log(`fill: ${inserted} inserted, ${evicted} evicted, size ${sizeAfterFill}`);
  console.log('operation            ns/op');
  for (const [k, v] of Object.entries(report.nsPerOp)) console.log(`${k.padEnd(20)} ${v.toFixed(1).padStart(6)}`);
  console.log(`sweep slice (buckets/10): ${report.sweepSliceMs} ms`);
  console.log(`lookup hits ${hits} of ${2 * N}, false hits ${falseHits}, refreshed ${refreshed}`);
  console.log(`RSS: ${report.rssBeforeMB} MB before, ${report.rssAfterMB} MB after`);
}
