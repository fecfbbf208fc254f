// Unit tests of the shared flow table (src/flow/table.ts) and its clock (src/base/clock.ts),
// single-threaded. Concurrency: flow-concurrency.test.ts; model-based: flow-model.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  createFlowTableBuffer,
  FlowTable,
  FLOW_HEADER_MAX,
  FLOW_LAYOUT,
  UPSERT_EVICTED,
  UPSERT_HEADER_TOO_LONG,
  UPSERT_INSERTED,
  UPSERT_REFRESHED,
  flowTableBytes,
  randomHashSeed,
} from '../../src/flow/table';
import { monoMs, nowTicks, TICKS_PER_SECOND } from '../../src/base/clock';
import { reverse } from './helpers/flows';

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const ICMP6 = 58;

// Inner addresses only from the documentation ranges.
const A4 = 0xc0000201; // 192.0.2.1
const B4 = 0xc6336402; // 198.51.100.2
const C4 = 0xcb007103; // 203.0.113.3
const A6 = [0x20010db8, 0, 0, 1];
const B6 = [0x20010db8, 0, 0xffff0000, 2];

function key4(ep: number, proto: number, src: number, dst: number, sport: number, dport: number): Uint32Array {
  const k = new Uint32Array(11);
  k[0] = ep;
  k[1] = (4 << 8) | proto;
  k[2] = src;
  k[6] = dst;
  k[10] = ((sport << 16) | dport) >>> 0;
  return k;
}

function key6(ep: number, proto: number, src: number[], dst: number[], sport: number, dport: number): Uint32Array {
  const k = new Uint32Array(11);
  k[0] = ep;
  k[1] = (6 << 8) | proto;
  for (let i = 0; i < 4; i++) {
    k[2 + i] = src[i];
    k[6 + i] = dst[i];
  }
  k[10] = ((sport << 16) | dport) >>> 0;
  return k;
}

/** The same flow seen in the other direction. */
function rev(k: Uint32Array): Uint32Array {
  return reverse(k, new Uint32Array(11));
}

/** A Geneve-like header of len bytes, in the middle of a bigger buffer (at offset 7). */
function hdr(len: number, seed: number): { buf: Uint8Array; off: number; bytes: Uint8Array } {
  const buf = new Uint8Array(len + 20).fill(0xaa);
  for (let i = 0; i < len; i++) buf[7 + i] = (seed * 31 + i * 7) & 0xff;
  return { buf, off: 7, bytes: buf.slice(7, 7 + len) };
}

const GWLB = 0xc6120001; // 198.18.0.1
const LOCAL = 0xc6120a05; // 198.18.10.5

/** The hash the table used before it had a seed: the constant that the seed replaced. */
const SEED_A = 0x2f1a3b7d;

/** A table with a random hash seed (as the daemon's), or the one given. */
function table(maxFlows: number, seed?: number): FlowTable {
  return new FlowTable(createFlowTableBuffer(maxFlows, seed));
}

/** Lookup into a fresh 200-byte buffer with the header ending at 120; checks the bytes around it. */
function look(t: FlowTable, k: Uint32Array, now = 0): { len: number; bytes: Uint8Array | null } {
  const out = new Uint8Array(200).fill(0xee);
  const len = t.lookupInto(k, out, 120, now);
  if (len < 0) return { len, bytes: null };
  assert.equal(out[120], 0xee, 'byte at endOff untouched');
  assert.equal(out[120 - len - 1], 0xee, 'byte before the header untouched');
  return { len, bytes: out.slice(120 - len, 120) };
}

test('insert then lookup in both directions: IPv4/IPv6, with and without ports', () => {
  const t = table(100);
  const keys = [
    key4(1, TCP, A4, B4, 40000, 443),
    key4(1, UDP, C4, A4, 53, 5353),
    key4(1, ICMP, A4, C4, 0, 0),
    key6(1, TCP, A6, B6, 50000, 80),
    key6(1, UDP, B6, A6, 1, 65535),
    key6(1, ICMP6, A6, B6, 0, 0),
  ];
  keys.forEach((k, i) => {
    const h = hdr(40, i);
    assert.equal(t.upsert(k, h.buf, h.off, 40, GWLB + i, LOCAL, 10000 + i, 5), UPSERT_INSERTED);
  });
  assert.equal(t.size(), keys.length);
  keys.forEach((k, i) => {
    for (const q of [k, rev(k)]) {
      const r = look(t, q, 6);
      assert.equal(r.len, 40);
      assert.deepEqual(r.bytes, hdr(40, i).bytes);
      assert.equal(t.hitGwlbIp, GWLB + i);
      assert.equal(t.hitLocalIp, LOCAL);
      assert.equal(t.hitGwlbPort, 10000 + i);
    }
  });
  // An upsert from the other direction is the same flow.
  const h = hdr(40, 99);
  assert.equal(t.upsert(rev(keys[0]), h.buf, h.off, 40, GWLB, LOCAL, 1, 7), UPSERT_REFRESHED);
  assert.equal(t.size(), keys.length);
});

test('ports are part of the key; equal addresses order by port', () => {
  const t = table(100);
  const h = hdr(40, 1);
  const k1 = key4(1, TCP, A4, B4, 1000, 80);
  const k2 = key4(1, TCP, A4, B4, 1001, 80);
  assert.equal(t.upsert(k1, h.buf, h.off, 40, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  assert.equal(look(t, k2).len, -1);
  assert.equal(look(t, rev(k2)).len, -1);
  // Same address on both sides (loopback-like): the ports decide the direction.
  const k3 = key4(1, UDP, C4, C4, 7000, 53);
  assert.equal(t.upsert(k3, h.buf, h.off, 40, GWLB, LOCAL, 2, 0), UPSERT_INSERTED);
  assert.equal(look(t, rev(k3)).len, 40);
  assert.equal(t.hitGwlbPort, 2);
  assert.equal(look(t, key4(1, UDP, C4, C4, 7000, 54)).len, -1);
  // A port-less key does not match a key with ports.
  assert.equal(look(t, key4(1, TCP, A4, B4, 0, 0)).len, -1);
});

test('refresh replaces the header (new cookie) and the outer fields', () => {
  const t = table(100);
  const k = key4(3, TCP, A4, B4, 40000, 443);
  const h1 = hdr(40, 1);
  assert.equal(t.upsert(k, h1.buf, h1.off, 40, GWLB, LOCAL, 1111, 1), UPSERT_INSERTED);
  // Same everything: refreshed.
  assert.equal(t.upsert(k, h1.buf, h1.off, 40, GWLB, LOCAL, 1111, 2), UPSERT_REFRESHED);
  // New cookie (last 4 bytes), other GWLB node, other port.
  const h2 = hdr(40, 1);
  h2.buf[h2.off + 39] ^= 0xff;
  h2.bytes[39] ^= 0xff;
  assert.equal(t.upsert(rev(k), h2.buf, h2.off, 40, GWLB + 1, LOCAL + 2, 2222, 3), UPSERT_REFRESHED);
  let r = look(t, k);
  assert.equal(r.len, 40);
  assert.deepEqual(r.bytes, h2.bytes);
  assert.equal(t.hitGwlbIp, GWLB + 1);
  assert.equal(t.hitLocalIp, LOCAL + 2);
  assert.equal(t.hitGwlbPort, 2222);
  // A header of another length.
  const h3 = hdr(32, 5);
  assert.equal(t.upsert(k, h3.buf, h3.off, 32, GWLB, LOCAL, 3333, 4), UPSERT_REFRESHED);
  r = look(t, rev(k));
  assert.equal(r.len, 32);
  assert.deepEqual(r.bytes, h3.bytes);
  assert.equal(t.hitGwlbPort, 3333);
  assert.equal(t.size(), 1);
});

test('the endpoint id, protocol and family are part of the key', () => {
  const t = table(100);
  const h = hdr(40, 1);
  const k = key4(0x00030001, TCP, A4, B4, 40000, 443);
  t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  assert.equal(look(t, key4(0x00040001, TCP, A4, B4, 40000, 443)).len, -1, 'other generation');
  assert.equal(look(t, key4(0x00030002, TCP, A4, B4, 40000, 443)).len, -1, 'other slot');
  assert.equal(look(t, key4(0x00030001, UDP, A4, B4, 40000, 443)).len, -1, 'other protocol');
  const k6 = key4(0x00030001, TCP, A4, B4, 40000, 443);
  k6[1] = (6 << 8) | TCP;
  assert.equal(look(t, k6).len, -1, 'other family');
  assert.equal(look(t, k).len, 40);
});

test('header longer than 60 bytes: UPSERT_HEADER_TOO_LONG, nothing stored, the flow removed; 0 and 60 are fine', () => {
  const t = table(100);
  const k = key4(1, TCP, A4, B4, 1, 2);
  const h = hdr(64, 1);
  assert.equal(t.upsert(k, h.buf, h.off, 61, GWLB, LOCAL, 1, 0), UPSERT_HEADER_TOO_LONG);
  assert.equal(t.size(), 0);
  assert.equal(look(t, k).len, -1);
  assert.equal(t.upsert(k, h.buf, h.off, FLOW_HEADER_MAX, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  assert.deepEqual(look(t, k).bytes, h.bytes.subarray(0, 60));
  const k2 = key4(1, TCP, A4, B4, 1, 3);
  assert.equal(t.upsert(k2, h.buf, h.off, 0, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  assert.equal(look(t, k2).len, 0);
  // Too long on refresh (GWLB's latest header for the 5-tuple cannot be stored): the older header
  // and cookie must not be used for returns any more, so the flow is removed, in either direction.
  assert.equal(t.size(), 2);
  assert.equal(t.upsert(rev(k), h.buf, h.off, 64, GWLB + 9, LOCAL, 9, 0), UPSERT_HEADER_TOO_LONG);
  assert.equal(look(t, k).len, -1, 'a return finds no flow, not the old header');
  assert.equal(look(t, rev(k)).len, -1);
  assert.equal(t.size(), 1);
  assert.equal(look(t, k2).len, 0, 'other flows untouched');
  // A later header that fits stores the flow again.
  assert.equal(t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  assert.deepEqual(look(t, k).bytes, h.bytes.subarray(0, 40));
  assert.equal(t.size(), 2);
});

test('remove(): every copy of a flow, in either direction; a missing flow removes nothing', () => {
  const sab = createFlowTableBuffer(100);
  const t = new FlowTable(sab);
  const raw = new Int32Array(sab);
  const h = hdr(40, 5);
  const k = key6(2, UDP, A6, B6, 53, 4000);
  const other = key6(2, UDP, A6, B6, 53, 4001);
  assert.equal(t.remove(k), 0);
  assert.equal(t.upsert(other, h.buf, h.off, 40, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  assert.equal(t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  assert.equal(t.remove(rev(k)), 1);
  assert.equal(t.size(), 1);
  assert.equal(look(t, k).len, -1);
  assert.equal(look(t, other).len, 40);
  // Two copies of one key, as two threads inserting it at the same moment can leave: lock the
  // first copy (a writer preempted mid-write), upsert again (goes around it), unlock. Both go,
  // and with them any chance of a return finding the older header.
  const base = FLOW_LAYOUT.entriesBase(t.buckets);
  const occupied = (): number[] => {
    const found: number[] = [];
    for (let i = 0; i < t.capacity; i++) {
      const e = base + i * FLOW_LAYOUT.E_WORDS;
      if ((raw[e] & FLOW_LAYOUT.ST_OCC) !== 0) found.push(e);
    }
    return found;
  };
  const onlyOther = occupied();
  assert.equal(onlyOther.length, 1);
  assert.equal(t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
  const firstCopy = occupied().filter((e) => !onlyOther.includes(e));
  assert.equal(firstCopy.length, 1);
  raw[firstCopy[0]] |= FLOW_LAYOUT.ST_WRITING;
  assert.equal(t.upsert(k, h.buf, h.off, 40, GWLB + 1, LOCAL, 2, 0), UPSERT_INSERTED, 'a second copy');
  raw[firstCopy[0]] &= ~FLOW_LAYOUT.ST_WRITING;
  assert.equal(occupied().length, 3);
  assert.equal(t.remove(k), 2);
  assert.deepEqual(occupied(), onlyOther);
  assert.equal(t.size(), 1);
  assert.equal(look(t, k).len, -1);
});

test('argument checks: header outside the buffer, endOff out of range', () => {
  const t = table(10);
  const k = key4(1, TCP, A4, B4, 1, 2);
  const h = hdr(40, 1);
  assert.throws(() => t.upsert(k, h.buf, h.buf.length - 10, 40, GWLB, LOCAL, 1, 0), RangeError);
  assert.throws(() => t.upsert(k, h.buf, -1, 40, GWLB, LOCAL, 1, 0), RangeError);
  assert.equal(t.size(), 0);
  t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  assert.throws(() => t.lookupInto(k, new Uint8Array(50), 51, 0), RangeError);
  assert.throws(() => t.lookupInto(k, new Uint8Array(50), 39, 0), RangeError);
  assert.equal(t.lookupInto(k, new Uint8Array(50), 40, 0), 40);
});

test('geometry: shared by every instance over the buffer, 1M flows under 150 MB', () => {
  assert.ok(flowTableBytes(1_000_000) < 150e6, `${flowTableBytes(1_000_000)} bytes`);
  const sab = createFlowTableBuffer(1000);
  const a = new FlowTable(sab);
  const b = new FlowTable(sab);
  assert.equal(a.buckets, Math.ceil(1100 / 8));
  assert.equal(a.capacity, a.buckets * 8);
  assert.equal(b.capacity, a.capacity);
  const h = hdr(40, 4);
  const k = key6(7, TCP, A6, B6, 1, 2);
  a.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 9, 0);
  assert.equal(b.size(), 1);
  assert.equal(look(b, rev(k)).len, 40);
  assert.throws(() => createFlowTableBuffer(0), RangeError);
  assert.throws(() => createFlowTableBuffer(1.5), RangeError);
  assert.throws(() => new FlowTable(new SharedArrayBuffer(4096)));
});

/** Deterministic distinct IPv4 TCP keys: i -> 192.0.2.x:port -> 198.51.100.y:443. */
function nthKey(i: number, ep = 1): Uint32Array {
  return key4(ep, TCP, 0xc0000200 | (i & 0xff), 0xc6336400 | ((i >>> 8) & 0xff), 1024 + (i >>> 16), 443);
}

/** A 40-byte header naming flow i (its first 4 bytes), as GWLB's cookie would. */
function hdrOf(i: number): Uint8Array {
  const b = new Uint8Array(40).fill(0x5c);
  b[0] = i >>> 24;
  b[1] = (i >>> 16) & 0xff;
  b[2] = (i >>> 8) & 0xff;
  b[3] = i & 0xff;
  return b;
}

test('capacity: maxFlows flows fit without evictions; beyond, evictions and size <= capacity', () => {
  const maxFlows = 5000;
  // The fixed seed keeps this exact: under random seeds about 1 table in 250 of this size evicts
  // one flow on the way to maxFlows (2 of 500 seeds tried).
  const t = table(maxFlows, SEED_A);
  let evicted = 0;
  for (let i = 0; i < maxFlows; i++) {
    const r = t.upsert(nthKey(i), hdrOf(i), 0, 40, GWLB, LOCAL, i & 0xffff, i);
    assert.ok(r === UPSERT_INSERTED || r === UPSERT_EVICTED);
    if (r === UPSERT_EVICTED) evicted++;
  }
  // Two choices + one displacement level: ~91% fill before the first eviction on average.
  assert.equal(evicted, 0, `${evicted} evictions while filling to maxFlows`);
  assert.equal(t.size(), maxFlows);
  const total = 3 * t.capacity;
  for (let i = maxFlows; i < total; i++) {
    const r = t.upsert(nthKey(i), hdrOf(i), 0, 40, GWLB, LOCAL, i & 0xffff, i);
    if (r === UPSERT_EVICTED) evicted++;
    else assert.equal(r, UPSERT_INSERTED);
    assert.ok(t.size() <= t.capacity);
  }
  assert.ok(evicted > t.capacity, `${evicted} evictions`);
  assert.ok(t.size() >= t.capacity * 0.97, `size ${t.size()} of ${t.capacity}`);
  // Every flow counted is findable exactly once (no duplicates single-threaded), with its own
  // data, also those that displacement moved to their other bucket.
  let hits = 0;
  const out = new Uint8Array(64);
  for (let i = 0; i < total; i++) {
    if (t.lookupInto(nthKey(i), out, 64, total) >= 0) {
      hits++;
      assert.deepEqual(out.subarray(24, 64), hdrOf(i));
      assert.equal(t.hitGwlbPort, i & 0xffff);
    }
  }
  assert.equal(hits, t.size());
  // The most recent flows survived (evictions take the idle-longest of the 16 candidates).
  let recent = 0;
  for (let i = total - 500; i < total; i++) if (t.lookupInto(nthKey(i), out, 64, total) >= 0) recent++;
  assert.ok(recent >= 490, `${recent} of the last 500 flows present`);
});

test('eviction takes the flow idle longest (a lookup counts as use)', () => {
  const t = table(7); // one bucket of 8: both candidate buckets are the same
  assert.equal(t.buckets, 1);
  assert.equal(t.capacity, 8);
  const h = hdr(40, 1);
  for (let i = 0; i < 8; i++) assert.equal(t.upsert(nthKey(i), h.buf, h.off, 40, GWLB, LOCAL, 1, 10 + i), UPSERT_INSERTED);
  assert.equal(look(t, rev(nthKey(0)), 20).len, 40); // flow 0 used at 20: now flow 1 is the oldest
  assert.equal(t.upsert(nthKey(100), h.buf, h.off, 40, GWLB, LOCAL, 1, 21), UPSERT_EVICTED);
  assert.equal(t.size(), 8);
  assert.equal(look(t, nthKey(1)).len, -1);
  assert.equal(look(t, nthKey(0), 22).len, 40);
  assert.equal(look(t, nthKey(100), 22).len, 40);
  // Flow 2 refreshed by an upsert: flow 3 goes next.
  t.upsert(nthKey(2), h.buf, h.off, 40, GWLB, LOCAL, 1, 23);
  assert.equal(t.upsert(nthKey(101), h.buf, h.off, 40, GWLB, LOCAL, 1, 24), UPSERT_EVICTED);
  assert.equal(look(t, nthKey(3)).len, -1);
  assert.equal(look(t, nthKey(2)).len, 40);
  assert.equal(t.size(), 8);
});

// ---- the hash seed (docs/security.md, "Fill the flow table") ----------------------------------------

/** Candidate buckets of key in t, as "b1,b2". */
function placeOf(t: FlowTable, k: Uint32Array): string {
  const out = new Int32Array(2);
  t.bucketsOf(k, out);
  return `${out[0]},${out[1]}`;
}

test('hash seed: kept in the buffer (every instance, every thread hashes alike); other seeds place keys elsewhere', () => {
  const sabA = createFlowTableBuffer(1000, SEED_A);
  const a = new FlowTable(sabA);
  const a2 = new FlowTable(sabA);
  const b = new FlowTable(createFlowTableBuffer(1000, 0x9a61c0de));
  assert.equal(a.seed, SEED_A);
  assert.equal(a2.seed, SEED_A);
  assert.equal(b.seed, 0x9a61c0de | 0);
  let moved = 0;
  for (let i = 0; i < 200; i++) {
    const k = nthKey(i);
    assert.equal(placeOf(a2, k), placeOf(a, k), 'same buffer, same place');
    assert.equal(placeOf(a, rev(k)), placeOf(a, k), 'either direction, same place');
    if (placeOf(b, k) !== placeOf(a, k)) moved++;
  }
  // 138 buckets: a key keeps both its buckets under another seed about 1 time in 19,000.
  assert.ok(moved >= 195, `${moved} of 200 keys placed differently`);
  // The default seed is random: two tables almost never share it.
  const seeds = new Set([0, 1, 2, 3].map(() => new FlowTable(createFlowTableBuffer(16)).seed));
  assert.ok(seeds.size >= 3, `default seeds ${[...seeds]}`);
  assert.ok(Number.isInteger(randomHashSeed()) && randomHashSeed() >= 0 && randomHashSeed() <= 0xffffffff);
  assert.throws(() => createFlowTableBuffer(100, -1), RangeError);
  assert.throws(() => createFlowTableBuffer(100, 2 ** 32), RangeError);
  assert.throws(() => createFlowTableBuffer(100, 1.5), RangeError);
});

test('hash seed: for any seed, every flow is found in both directions with its own header (fast-check, fixed seed)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.uniqueArray(fc.integer({ min: 0, max: 0xffffff }), { minLength: 1, maxLength: 300 }), (seed, ids) => {
      const t = new FlowTable(createFlowTableBuffer(400, seed));
      ids.forEach((id, j) => {
        const k = j % 2 === 0 ? nthKey(id) : key6(2, UDP, A6, [0x20010db8, 1, id, j], 1000 + (id & 0x7fff), 53);
        const r = t.upsert(k, hdrOf(id), 0, 40, GWLB, LOCAL, j, 10);
        assert.ok(r === UPSERT_INSERTED || r === UPSERT_EVICTED);
      });
      // Single-threaded: every flow counted is found exactly once, in either direction, with its data.
      const out = new Uint8Array(64);
      let hits = 0;
      ids.forEach((id, j) => {
        const k = j % 2 === 0 ? nthKey(id) : key6(2, UDP, A6, [0x20010db8, 1, id, j], 1000 + (id & 0x7fff), 53);
        const fwd = t.lookupInto(k, out, 64, 11);
        const back = t.lookupInto(rev(k), out, 64, 11);
        assert.equal(fwd, back);
        if (fwd >= 0) {
          hits++;
          assert.deepEqual(out.subarray(24, 64), hdrOf(id));
          assert.equal(t.hitGwlbPort, j);
        }
      });
      assert.equal(hits, t.size());
      // Up to 300 flows in a table for 400: none evicted, whatever the seed.
      assert.equal(hits, ids.length);
    }),
    { seed: 18, numRuns: 200 },
  );
});

test('hash seed: keys crafted to share one bucket pair under a known seed evict another endpoint\'s flow only under that seed', () => {
  // The attack: knowing the hash, one endpoint's sender picks 5-tuples that all land in the two
  // buckets of another endpoint's idle flow, and its 16 fresh flows evict it.
  const victim = key4(2, TCP, A4, B4, 40000, 443);
  const probe = new FlowTable(createFlowTableBuffer(1000, SEED_A));
  const target = placeOf(probe, victim);
  const [t1, t2] = target.split(',');
  const swapped = `${t2},${t1}`;
  const crafted: Uint32Array[] = [];
  for (let i = 0; crafted.length < 24 && i < 5_000_000; i++) {
    const k = key4(1, UDP, 0xc0000200 | (i & 0xff), 0xcb007100 | ((i >>> 8) & 0xff), 1024 + (i >>> 16), 53);
    const p = placeOf(probe, k);
    if (p === target || p === swapped) crafted.push(k);
  }
  assert.equal(crafted.length, 24, 'crafted keys found');
  const attack = (t: FlowTable): { victimFound: boolean; evictions: number } => {
    const h = hdr(40, 1);
    assert.equal(t.upsert(victim, h.buf, h.off, 40, GWLB, LOCAL, 1, 0), UPSERT_INSERTED);
    let evictions = 0;
    crafted.forEach((k, i) => {
      if (t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 2, 1 + i) === UPSERT_EVICTED) evictions++;
    });
    return { victimFound: look(t, victim, 30).len === 40, evictions };
  };
  // Under the seed they were crafted for: the victim is evicted (and 8 more of the crafted flows).
  const known = attack(new FlowTable(createFlowTableBuffer(1000, SEED_A)));
  assert.deepEqual(known, { victimFound: false, evictions: 24 + 1 - 16 });
  // Under the random seed a table gets by default, the same keys scatter: nothing is evicted.
  const t = new FlowTable(createFlowTableBuffer(1000));
  assert.notEqual(t.seed, SEED_A | 0);
  const crowded = Math.max(...[...crafted.reduce((m, k) => m.set(placeOf(t, k), (m.get(placeOf(t, k)) ?? 0) + 1), new Map<string, number>()).values()]);
  assert.ok(crowded < 8, `${crowded} crafted keys share a bucket pair under seed ${t.seed}`);
  assert.deepEqual(attack(t), { victimFound: true, evictions: 0 });
});

test('sweep: TCP and other idle timeouts, strictly longer than the limit', () => {
  const t = table(100);
  const h = hdr(40, 1);
  const tcp = key4(1, TCP, A4, B4, 1, 2);
  const udp = key4(1, UDP, A4, B4, 1, 2);
  const icmp6 = key6(1, ICMP6, A6, B6, 0, 0);
  for (const k of [tcp, udp, icmp6]) t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 1000);
  const TCP_IDLE = 350 * TICKS_PER_SECOND;
  const OTHER_IDLE = 120 * TICKS_PER_SECOND;
  assert.equal(t.sweep(1000 + OTHER_IDLE, TCP_IDLE, OTHER_IDLE, t.buckets, null), 0);
  assert.equal(t.sweep(1000 + OTHER_IDLE + 1, TCP_IDLE, OTHER_IDLE, t.buckets, null), 2);
  assert.equal(t.size(), 1);
  assert.equal(look(t, udp).len, -1);
  assert.equal(look(t, icmp6).len, -1);
  assert.equal(t.sweep(1000 + TCP_IDLE, TCP_IDLE, OTHER_IDLE, t.buckets, null), 0);
  assert.equal(look(t, tcp).len, 40); // (lookup at tick 0 is far in the past: no refresh effect)
  assert.equal(t.sweep(1000 + TCP_IDLE + 1, TCP_IDLE, OTHER_IDLE, t.buckets, null), 1);
  assert.equal(t.size(), 0);
  assert.equal(look(t, tcp).len, -1);
});

test('sweep: a lookup or a refresh keeps a flow alive', () => {
  const t = table(100);
  const h = hdr(40, 1);
  const a = key4(1, UDP, A4, B4, 1, 2);
  const b = key4(1, UDP, A4, C4, 1, 2);
  const c = key4(1, UDP, B4, C4, 1, 2);
  for (const k of [a, b, c]) t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  assert.equal(look(t, rev(a), 90).len, 40);
  t.upsert(b, h.buf, h.off, 40, GWLB, LOCAL, 1, 95);
  assert.equal(t.sweep(101, 1000, 100, t.buckets, null), 1);
  assert.equal(look(t, c).len, -1);
  assert.equal(t.sweep(191, 1000, 100, t.buckets, null), 1); // a (seen 90)
  assert.equal(t.sweep(196, 1000, 100, t.buckets, null), 1); // b (seen 95)
  assert.equal(t.size(), 0);
});

test('sweep: flows of endpoints that are no longer live go at once', () => {
  const t = table(100);
  const h = hdr(40, 1);
  const live1 = 0x00010001;
  const dead = 0x80020002; // generation with the top bit set: passed as unsigned
  for (let i = 0; i < 10; i++) {
    t.upsert(nthKey(i, live1), h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
    t.upsert(nthKey(i, dead), h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  }
  const seen = new Set<number>();
  const removed = t.sweep(1, 3500, 1200, t.buckets, (ep) => {
    seen.add(ep);
    return ep !== dead;
  });
  assert.equal(removed, 10);
  assert.deepEqual([...seen].sort(), [live1, dead].sort());
  assert.equal(t.size(), 10);
  for (let i = 0; i < 10; i++) {
    assert.equal(look(t, nthKey(i, live1)).len, 40);
    assert.equal(look(t, nthKey(i, dead)).len, -1);
  }
});

test('sweep: incremental budget covers the whole table after buckets/budget calls', () => {
  const t = table(2000);
  const h = hdr(40, 1);
  const n = 1500;
  for (let i = 0; i < n; i++) t.upsert(nthKey(i), h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  assert.equal(t.size(), n);
  const budget = 16;
  const calls = Math.ceil(t.buckets / budget);
  let total = 0;
  let prevSize = t.size();
  for (let c = 0; c < calls; c++) {
    const r = t.sweep(1000, 10, 10, budget, null);
    assert.ok(r <= budget * 8);
    total += r;
    assert.equal(t.size(), prevSize - r);
    prevSize = t.size();
    if (c < calls - 2) assert.ok(t.size() > 0, 'not everything after a few calls');
  }
  assert.equal(total, n);
  assert.equal(t.size(), 0);
  // Budgets larger than the table examine it once.
  for (let i = 0; i < 10; i++) t.upsert(nthKey(i), h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  assert.equal(t.sweep(1000, 10, 10, 10 * t.buckets, null), 10);
  assert.equal(t.sweep(1000, 10, 10, 0, null), 0);
});

test('ticks wrap: idle times are 32-bit differences', () => {
  const t = table(100);
  const h = hdr(40, 1);
  const k = key4(1, UDP, A4, B4, 1, 2);
  const t0 = 2 ** 31 - 5; // stored as Int32: wraps to negative
  t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, t0);
  assert.equal(t.sweep(t0 + 100, 100, 100, t.buckets, null), 0);
  assert.equal(look(t, k, t0 + 50).len, 40);
  assert.equal(t.sweep(t0 + 150, 100, 100, t.buckets, null), 0);
  assert.equal(t.sweep(t0 + 151, 100, 100, t.buckets, null), 1);
  // Beyond 2^32 as well.
  t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 2 ** 32 + 7);
  assert.equal(t.sweep(2 ** 32 + 107, 100, 100, t.buckets, null), 0);
  assert.equal(t.sweep(2 ** 32 + 108, 100, 100, t.buckets, null), 1);
});

test('an entry left locked by a dead writer is reclaimed by sweep after STUCK_TICKS', () => {
  const sab = createFlowTableBuffer(100);
  const t = new FlowTable(sab);
  const raw = new Int32Array(sab);
  const h = hdr(40, 1);
  const k = key4(1, TCP, A4, B4, 1, 2);
  t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  const base = FLOW_LAYOUT.entriesBase(t.buckets);
  let locked = -1;
  for (let i = 0; i < t.capacity; i++) {
    const e = base + i * FLOW_LAYOUT.E_WORDS;
    if (raw[e] & FLOW_LAYOUT.ST_OCC) {
      raw[e] |= FLOW_LAYOUT.ST_WRITING; // as if a worker died between claim and publish
      locked = e;
    }
  }
  assert.ok(locked >= 0);
  // Lookups treat it as a miss (bounded spin), upserts go around it (a new copy).
  assert.equal(look(t, k).len, -1);
  assert.equal(t.upsert(k, h.buf, h.off, 40, GWLB, LOCAL, 2, 0), UPSERT_INSERTED);
  assert.equal(look(t, k).len, 40);
  assert.equal(t.hitGwlbPort, 2);
  assert.equal(t.size(), 2);
  const S = FLOW_LAYOUT.STUCK_TICKS;
  assert.equal(t.sweep(100, 10000, 10000, t.buckets, null), 0);
  assert.equal(t.sweep(100 + S - 1, 10000, 10000, t.buckets, null), 0);
  assert.ok(raw[locked] & FLOW_LAYOUT.ST_WRITING);
  assert.equal(t.sweep(100 + S, 10000, 10000, t.buckets, null), 1);
  assert.equal(raw[locked] & 3, 0, 'free and unlocked');
  assert.equal(t.size(), 1);
  assert.equal(look(t, k).len, 40);
});

test('an entry left locked with tag 0 (its remover died between clearing the tag and publishing) is reclaimed once a worker death is reported', () => {
  const sab = createFlowTableBuffer(100);
  const t = new FlowTable(sab);
  const raw = new Int32Array(sab);
  const h = hdr(40, 1);
  t.upsert(key4(1, TCP, A4, B4, 1, 2), h.buf, h.off, 40, GWLB, LOCAL, 1, 0);
  const base = FLOW_LAYOUT.entriesBase(t.buckets);
  let e = -1;
  for (let i = 0; i < t.capacity && e < 0; i++) {
    const x = base + i * FLOW_LAYOUT.E_WORDS;
    if (raw[x] & FLOW_LAYOUT.ST_OCC) {
      raw[x] |= FLOW_LAYOUT.ST_WRITING;
      raw[FLOW_LAYOUT.tagsBase() + i] = 0;
      e = x;
    }
  }
  assert.ok(e >= 0);
  assert.equal(t.size(), 1);
  const S = FLOW_LAYOUT.STUCK_TICKS;
  // The sweep screens by tag: it does not see the entry, however long it stays locked.
  assert.equal(t.sweep(100, 10000, 10000, t.buckets, null), 0);
  assert.equal(t.sweep(100 + 2 * S, 10000, 10000, t.buckets, null), 0);
  assert.ok(raw[e] & FLOW_LAYOUT.ST_WRITING);
  t.suspectStuck(); // what the daemon calls when a worker exits
  assert.equal(t.sweep(200, 10000, 10000, t.buckets, null), 0); // first sighting
  assert.equal(t.sweep(200 + S, 10000, 10000, t.buckets, null), 1);
  assert.equal(raw[e] & 3, 0, 'free and unlocked');
  assert.equal(t.size(), 0);
});

test('clock: ticks are integer deciseconds of the monotonic clock, never going back', () => {
  assert.equal(TICKS_PER_SECOND, 10);
  const a = nowTicks();
  assert.ok(Number.isInteger(a));
  assert.ok(Math.abs(a - monoMs() / 100) <= 1);
  let prev = a;
  for (let i = 0; i < 1000; i++) {
    const b = nowTicks();
    assert.ok(b >= prev);
    prev = b;
  }
});
