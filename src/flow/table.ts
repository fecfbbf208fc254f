// The shared flow table: one hash table in a SharedArrayBuffer, used at the same time by every
// data-plane worker thread (each with its own FlowTable instance over the same buffer) and by the
// main thread, which sweeps idle flows.
//
// Inbound packets (from GWLB) upsert key -> (Geneve header, GWLB outer IP, local outer IP, GWLB UDP
// source port, last-seen); return packets (read from TUN) look the key up in either direction and
// copy the stored header out (docs/protocol.md sections 1 and 2).
//
// ---- Memory layout (all offsets in Int32 words of one Int32Array over the whole buffer) --------
//   [0, 32)          header: magic, layout version, bucket count, capacity, maxFlows, hash seed;
//                    the shared flow counter and the sweep cursor each on their own 64-byte line.
//   [TAGS, +cap)     one tag word per entry (rounded up to 128 bytes): the entry's key hash, or 0
//                    when the entry is free. The 8 tags of a bucket share one cache line, so a probe
//                    touches one line per bucket and then only the entry whose tag matches (a hit
//                    at 1M flows costs ~2 cache misses instead of 8-16). Tags are HINTS kept by the
//                    entry's writer: the state word below is the only authority.
//   [ENTRIES, ...)   capacity entries of 32 words (128 bytes, two cache lines):
//     0 state  1 hash  2 endpoint id  3 family<<8|proto  4-7 address A  8-11 address B
//     12 portA<<16|portB  13 last-seen tick  14 GWLB IP  15 local IP  16 gwlbPort<<16|hdrLen
//     17-31 header bytes (60), packed 4 to a word, byte i in bits 8*(i%4) of word i/4 (by
//     arithmetic, so independent of the host's byte order); copied word by word (4x faster
//     than a byte loop).
//   Words 2-12 are the canonical key. 1,000,000 flows: 137,500 buckets, 1.1M entries,
//   145.2 MB = 138.5 MiB (entries 140.8 MB + tags 4.4 MB), allocated once, never grown; the
//   kernel commits pages as they are first written.
//
// ---- Hashing --------------------------------------------------------------------------------------
// The key is canonicalised first (the smaller (address, port) pair becomes A), so A->B and B->A are
// the same key. murmur3-style 32-bit hash over the canonical words (5 for IPv4: its 6 other address
// words are always 0; 11 for IPv6), whose initial state is a random 32-bit seed drawn once per
// table (createFlowTableBuffer, in the main thread) and kept in the buffer's header, so every
// thread over the buffer hashes alike: keys cannot be chosen offline to share buckets
// (docs/security.md, "Fill the flow table"), as the kernel keys its own flow hashes with a
// boot-time random. The seed costs nothing per packet (it replaces a constant). Two candidate
// buckets ("two-choice"): b1 from the hash's high bits (multiply-high, so the bucket count need
// not be a power of two), b2 from a remix of it.
// Insertion goes to the emptier bucket. When both are full, an entry of one of them whose OTHER
// bucket has room is moved there (one level of cuckoo displacement). Simulated (1.1M entries):
// the first eviction comes at ~91% fill and evictions stay under 0.2% of inserts up to 95%;
// plain two-choice starts evicting at ~74% and evicts 11% of inserts between 85% and 90%.
// Measured: maxFlows flows (90.9% fill) go in without a single eviction (1k to 1M flows, with the
// fixed hash the table had before its seed; with random seeds, 2 of 500 tables of 5,000 flows
// evicted one flow on the way there). Only
// when no entry can move is the entry idle longest among the 16 evicted; a full table (size ==
// capacity, steady eviction) skips the displacement scan.
//
// ---- Concurrency ------------------------------------------------------------------------------------
// The state word is a seqlock and an occupancy flag: bit 0 = being written, bit 1 = occupied,
// bits 2-31 = a version that only ever increases (wrapping after 2^30 writes of that entry), also
// across delete and re-insert, so a reader cannot be fooled by delete + reinsert (ABA).
// - Writers claim an entry with Atomics.compareExchange(state, s, s|1) from an even s they read,
//   write, and publish with compareExchange(s|1, version+1 | occupied). A successful claim from
//   the s under which the writer examined the entry proves that nothing changed in between.
// - Readers: s1 = Atomics.load(state) (spinning briefly while a write is in progress), compare the
//   key and copy the data with plain loads, s2 = Atomics.load(state); s1 !== s2 means a write
//   overlapped: retry (at most READ_TRIES times, then the entry counts as a miss). Plain data
//   accesses are deliberate: Atomics.load/store cost 5-8 ns each here against <1 ns for plain ones,
//   and an entry has 27 data words. This relies on V8 keeping plain typed-array accesses in program
//   order relative to Atomics calls (they are all on its effect chain) and on x86-64 keeping loads
//   with loads and stores with stores (TSO). On weakly ordered CPUs (arm64, e.g. Graviton) fence()
//   (an atomic read-modify-write on a private cell: release + acquire) orders the writer's claim
//   before its data stores and the reader's data loads before its second state load. Evidence:
//   flow-concurrency.test.ts reads ~2.5M self-checking entries under concurrent rewrites with 0
//   torn; with the second state load removed it catches torn reads within a second.
// - last-seen is refreshed by lookups and by unchanged refreshes with a single Atomics.store of
//   word 13 outside the seqlock (only when the tick changed); sweep and eviction re-check it after
//   claiming an entry.
// - A refresh that changes nothing (same header, IPs and port: the common case, one per inbound
//   packet) takes no lock: it only stores last-seen.
// - Two threads inserting the same new key at the same moment can create a duplicate entry. That is
//   harmless: lookups and upserts scan in the same fixed order and so agree on the first copy; the
//   other is never refreshed and expires. It is also rare: GWLB's outer 4-tuple pins a flow to one
//   receiving socket, hence one worker, so only a flow's return direction (lookups) is shared.
// - Moving an entry (displacement): lock the source, copy it to the free entry in its other bucket,
//   publish the copy, then reuse the locked source for the new key. A reader that meets the locked
//   source spins, then continues with the other slots; a reader that had already passed the
//   destination may miss the flow once (one dropped return packet; no torn data, ever).
// - A writer that dies between claim and publish (a worker terminated mid-write) would leave the
//   entry locked forever. sweep() reclaims an entry seen locked with the same state value for
//   STUCK_TICKS (5 s, against a critical section of ~100 ns); such a reclaim may leave size() off
//   by one.
// No operation blocks, allocates, or scans more than two buckets, except sweep, which scans
// `budget` buckets per call (no stop-the-world expiry), and snapshotInto, which reads the whole
// table once for a hand-over (src/control/handover.ts), when no worker runs.

import { randomFillSync } from 'node:crypto';
import { KEY_WORDS as FLOWKEY_WORDS } from '../wire/flowkey';
import { FLOW_HEADER_MAX as SIZES_FLOW_HEADER_MAX } from '../wire/sizes';

// Word layout of a flow key: src/wire/flowkey.ts. A local constant (the hot loops then see a
// literal, not a property of another module), checked against the source of truth at load.
const KEY_WORDS = 11;
if (FLOWKEY_WORDS !== KEY_WORDS) throw new Error(`flow table expects ${KEY_WORDS}-word keys, flowkey.ts has ${FLOWKEY_WORDS}`);

const HDR_MAX = 60;
if (SIZES_FLOW_HEADER_MAX !== HDR_MAX) throw new Error('flow table and src/wire/sizes.ts disagree on FLOW_HEADER_MAX');
const HDR_WORDS = HDR_MAX / 4;
/** Longest Geneve header stored (GWLB's is 40 bytes). */
export const FLOW_HEADER_MAX = HDR_MAX;
export const UPSERT_REFRESHED = 0;
export const UPSERT_INSERTED = 1;
export const UPSERT_EVICTED = 2;
export const UPSERT_HEADER_TOO_LONG = -1;
/** Not stored: lost MAX_ROUNDS races in a row against other writers of the same two buckets
 * (needs constant concurrent writes to the same 16 entries; 0 times in the concurrency test's
 * ~3M contended upserts). The next packet of the flow stores it. */
export const UPSERT_BUSY = -2;

/** Words of one hand-over snapshot record (FlowTable.snapshotInto, restore): entry words 2-31. */
export const SNAPSHOT_RECORD_WORDS = 30;
/** FlowTable.restore: the record cannot be held by this table (skipped). */
export const RESTORE_INVALID = -3;

const MAGIC = 0x464c5731; // "FLW1"
const LAYOUT_VERSION = 2; // 2: the hash seed in header word H_SEED
/** Most flows a table can be made for (2.4 GB of shared memory; word offsets stay below 2^31 and
 * bucket numbers below 2^22, which the multiply-high bucket mapping needs). */
export const MAX_FLOWS_LIMIT = 1 << 24;

// Header words.
const H_MAGIC = 0;
const H_LAYOUT = 1;
const H_BUCKETS = 2;
const H_CAPACITY = 3;
const H_MAX_FLOWS = 4;
const H_SEED = 5; // initial state of the key hash (int32)
const H_SIZE = 16; // own cache line: written by every insert/delete
const H_CURSOR = 24; // sweep cursor (next bucket to examine)
const HEADER_WORDS = 32;

const SLOTS = 8; // entries per bucket
const E_WORDS = 32; // words per entry
const E_STATE = 0;
const E_HASH = 1;
const E_KEY = 2; // 11 words: 2..12
const E_PROTO = 3;
const E_SEEN = 13;
const E_GWLB = 14;
const E_LOCAL = 15;
const E_META = 16;
const E_HDR = 17;
if (SNAPSHOT_RECORD_WORDS !== E_WORDS - E_KEY) throw new Error('flow table: a snapshot record is an entry without its state and hash words');

const ST_WRITING = 1;
const ST_OCC = 2;

const READ_TRIES = 8; // seqlock retries of a reader before the entry counts as a miss
const SPIN = 64; // loads waiting for a writer (~300 ns) before skipping the entry
const MAX_ROUNDS = 8; // upsert attempts after lost races
const STUCK_TICKS = 50; // 5 s

/** Layout facts, for tests and diagnostic tools (not needed to use the table). */
export const FLOW_LAYOUT = Object.freeze({
  HEADER_WORDS,
  SLOTS,
  E_WORDS,
  E_STATE,
  E_KEY,
  E_SEEN,
  ST_WRITING,
  ST_OCC,
  STUCK_TICKS,
  tagsBase: (): number => HEADER_WORDS,
  entriesBase: (buckets: number): number => HEADER_WORDS + tagWords(buckets),
});

// On x86 (TSO) V8's program order of typed-array accesses around Atomics calls is enough; weakly
// ordered CPUs need fence() (see the top comment).
const NEED_FENCE = process.arch !== 'x64' && process.arch !== 'ia32';

function tagWords(buckets: number): number {
  return Math.ceil((buckets * SLOTS) / 32) * 32; // keep the entries 128-byte aligned
}

function bucketsFor(maxFlows: number): number {
  // ~10% headroom over maxFlows: with two choices and one displacement level the table starts to
  // evict at ~91% fill, so maxFlows flows fit without evictions.
  return Math.max(1, Math.ceil((maxFlows * 1.1) / SLOTS));
}

/** Bytes of the shared buffer for a table of at most maxFlows flows. */
export function flowTableBytes(maxFlows: number): number {
  const nb = bucketsFor(maxFlows);
  return (HEADER_WORDS + tagWords(nb) + nb * SLOTS * E_WORDS) * 4;
}

/** A random 32-bit hash seed (uint32), from the system's CSPRNG. */
export function randomHashSeed(): number {
  return randomFillSync(new Uint32Array(1))[0];
}

/** Allocate the shared memory for a table of at most maxFlows flows, keyed with `seed` (a uint32;
 * by default a random one: pass one only to reproduce a layout, in tests and benchmarks). */
export function createFlowTableBuffer(maxFlows: number, seed: number = randomHashSeed()): SharedArrayBuffer {
  if (!Number.isInteger(maxFlows) || maxFlows < 1 || maxFlows > MAX_FLOWS_LIMIT) {
    throw new RangeError(`maxFlows must be an integer in 1..${MAX_FLOWS_LIMIT}, got ${maxFlows}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`hash seed must be a uint32, got ${seed}`);
  const nb = bucketsFor(maxFlows);
  const sab = new SharedArrayBuffer(flowTableBytes(maxFlows)); // zero-filled: every entry free
  const h = new Int32Array(sab, 0, HEADER_WORDS);
  h[H_LAYOUT] = LAYOUT_VERSION;
  h[H_BUCKETS] = nb;
  h[H_CAPACITY] = nb * SLOTS;
  h[H_MAX_FLOWS] = maxFlows;
  h[H_SEED] = seed | 0;
  Atomics.store(h, H_MAGIC, MAGIC); // last: a reader that sees the magic sees the geometry
  return sab;
}

export class FlowTable {
  /** Max flows actually storable (buckets * 8; about 1.1 * maxFlows). */
  readonly capacity: number;
  /** Number of buckets (so a caller can size sweep budgets). */
  readonly buckets: number;
  /** The key hash's seed, from the buffer's header (the same in every thread); int32. */
  readonly seed: number;
  // Result of the last successful lookupInto (instance fields, so lookups allocate nothing).
  /** GWLB outer IPv4 address (unsigned, 198.18.0.1 = 0xc6120001). */
  hitGwlbIp = 0;
  /** Local outer IPv4 address GWLB sent to (unsigned). */
  hitLocalIp = 0;
  /** UDP source port GWLB used for the flow. */
  hitGwlbPort = 0;

  private readonly i32: Int32Array;
  private readonly entBase: number; // word index of entry 0
  private readonly fenceCell = new Int32Array(new SharedArrayBuffer(4));
  /** Canonical key of the operation in progress (Int32 so it compares directly with the table). */
  private readonly ck = new Int32Array(KEY_WORDS);
  // Scratch of the operation in progress (fields, not allocations).
  private hash = 0;
  private foundState = 0;
  // displace() candidates: state, hash, other bucket.
  private readonly candState = new Int32Array(2 * SLOTS);
  private readonly candHash = new Int32Array(2 * SLOTS);
  private readonly candAlt = new Int32Array(2 * SLOTS);
  /** The pending header, packed as stored. */
  private readonly hw = new Int32Array(HDR_WORDS);
  private wLen = 0;
  private wGwlb = 0;
  private wLocal = 0;
  private wMeta = 0;
  private wNow = 0;
  // sweep(): entries seen locked, entry index -> [state, first tick] (rare; main thread only).
  private readonly stuck = new Map<number, number[]>();
  /** Passes of sweep() left that read every state word (suspectStuck). */
  private fullPasses = 0;

  constructor(sab: SharedArrayBuffer) {
    if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('FlowTable needs a SharedArrayBuffer');
    this.i32 = new Int32Array(sab);
    const i32 = this.i32;
    if (i32.length < HEADER_WORDS || Atomics.load(i32, H_MAGIC) !== MAGIC || i32[H_LAYOUT] !== LAYOUT_VERSION) {
      throw new Error('not a flow table buffer (use createFlowTableBuffer)');
    }
    this.buckets = i32[H_BUCKETS];
    this.capacity = i32[H_CAPACITY];
    this.seed = i32[H_SEED];
    this.entBase = HEADER_WORDS + tagWords(this.buckets);
    if (this.capacity !== this.buckets * SLOTS || (this.entBase + this.capacity * E_WORDS) * 4 !== sab.byteLength) {
      throw new Error('flow table buffer geometry does not match its size');
    }
  }

  /** Current number of flows (shared counter, all threads). */
  size(): number {
    return Atomics.load(this.i32, H_SIZE);
  }

  // ---- hashing ------------------------------------------------------------------------------------

  /** Canonical form of key into this.ck: the smaller (address words, then port) pair first. */
  private canon(key: Uint32Array): void {
    const ck = this.ck;
    const p = key[10];
    const pa = p >>> 16;
    const pb = p & 0xffff;
    // Unsigned comparison of address A (words 2-5) with address B (words 6-9), then the ports.
    let d = 0;
    for (let i = 2; i < 6; i++) {
      const a = key[i];
      const b = key[i + 4];
      if (a !== b) {
        d = a < b ? -1 : 1;
        break;
      }
    }
    if (d === 0) d = pa > pb ? 1 : -1;
    ck[0] = key[0];
    ck[1] = key[1];
    if (d < 0) {
      for (let i = 2; i < 10; i++) ck[i] = key[i];
      ck[10] = p;
    } else {
      for (let i = 2; i < 6; i++) {
        ck[i] = key[i + 4];
        ck[i + 4] = key[i];
      }
      ck[10] = (pb << 16) | pa;
    }
  }

  /** murmur3_32-style hash of the canonical key, seeded; sets this.hash and returns the tag (never
   * 0). IPv4 keys skip their six address words that are always 0 (the family is part of the key,
   * so this is still a function of the key). */
  private hashCanon(): number {
    const ck = this.ck;
    let h = mixk(this.seed, ck[0]);
    h = mixk(h, ck[1]);
    h = mixk(h, ck[2]);
    if ((ck[1] & 0xff00) === 0x400) {
      h = mixk(h, ck[6]);
    } else {
      for (let i = 3; i < 10; i++) h = mixk(h, ck[i]);
    }
    h = fmix32(mixk(h, ck[10]));
    this.hash = h;
    return h === 0 ? 1 : h;
  }

  private bucket1(h: number): number {
    // Multiply-high: (h * nb) / 2^32, exact in doubles (nb < 2^22).
    return (((h >>> 0) * this.buckets) * 2.3283064365386963e-10) | 0;
  }

  private bucket2(h: number, b1: number): number {
    const nb = this.buckets;
    const b = (((fmix32(h ^ 0x9e3779b9) >>> 0) * nb) * 2.3283064365386963e-10) | 0;
    if (b !== b1) return b;
    return b1 + 1 === nb ? 0 : b1 + 1; // (== b1 when there is a single bucket)
  }

  /** The two candidate buckets of key's flow (either direction) into out[0] and out[1], for tests
   * and diagnostics (never on the packet path). */
  bucketsOf(key: Uint32Array, out: Int32Array): void {
    this.canon(key);
    this.hashCanon();
    const b1 = this.bucket1(this.hash);
    out[0] = b1;
    out[1] = this.bucket2(this.hash, b1);
  }

  private fence(): void {
    Atomics.add(this.fenceCell, 0, 0);
  }

  // ---- lookup -------------------------------------------------------------------------------------

  /** Find the flow of key in either direction. On a hit, copy its header into out so that it ENDS at
   * out[endOff] (i.e. occupies out[endOff-hdrLen, endOff)), set hit* fields, refresh last-seen (a single
   * atomic store), and return hdrLen; on a miss return -1. Never returns a torn header: retry on concurrent write.
   * On a miss, out[endOff-60, endOff) may have been written (scratch of an abandoned read). */
  lookupInto(key: Uint32Array, out: Uint8Array, endOff: number, now: number): number {
    if (!(endOff >= 0 && endOff <= out.length && (endOff | 0) === endOff)) {
      throw new RangeError(`lookupInto: endOff ${endOff} outside 0..${out.length}`);
    }
    this.canon(key);
    const tag = this.hashCanon();
    const h = this.hash;
    const b1 = this.bucket1(h);
    const r = this.readBucket(b1, tag, out, endOff, now | 0);
    if (r >= 0) return r;
    const b2 = this.bucket2(h, b1);
    return b2 === b1 ? -1 : this.readBucket(b2, tag, out, endOff, now | 0);
  }

  private readBucket(b: number, tag: number, out: Uint8Array, endOff: number, now: number): number {
    const i32 = this.i32;
    const ck = this.ck;
    const tb = HEADER_WORDS + b * SLOTS;
    for (let i = 0; i < SLOTS; i++) {
      if (i32[tb + i] !== tag) continue;
      const e = this.entBase + (b * SLOTS + i) * E_WORDS;
      for (let t = 0; t < READ_TRIES; t++) {
        let s1 = Atomics.load(i32, e);
        for (let n = 0; (s1 & ST_WRITING) !== 0 && n < SPIN; n++) s1 = Atomics.load(i32, e);
        if ((s1 & (ST_WRITING | ST_OCC)) !== ST_OCC) break; // free, or a writer that takes too long
        let k = 0;
        while (k < KEY_WORDS && i32[e + E_KEY + k] === ck[k]) k++;
        // A mismatch needs no validation: key words change only when this entry's flow is removed
        // or inserted, and a read overlapping that may report either outcome.
        if (k !== KEY_WORDS) break;
        const gwlb = i32[e + E_GWLB];
        const local = i32[e + E_LOCAL];
        const meta = i32[e + E_META];
        const len = meta & 0xffff;
        if (len <= HDR_MAX) {
          let o = endOff - len;
          if (o < 0) throw new RangeError(`lookupInto: endOff ${endOff} < header length ${len}`);
          const w0 = e + E_HDR;
          const nw = len >>> 2;
          for (let w = 0; w < nw; w++) {
            const v = i32[w0 + w];
            out[o] = v;
            out[o + 1] = v >> 8;
            out[o + 2] = v >> 16;
            out[o + 3] = v >> 24;
            o += 4;
          }
          const rem = len & 3; // Geneve headers are whole words; other lengths work too
          if (rem !== 0) {
            const v = i32[w0 + nw];
            out[o] = v;
            if (rem > 1) out[o + 1] = v >> 8;
            if (rem > 2) out[o + 2] = v >> 16;
          }
        }
        if (NEED_FENCE) this.fence();
        if (Atomics.load(i32, e) !== s1) continue; // a write overlapped: read again
        this.hitGwlbIp = gwlb >>> 0;
        this.hitLocalIp = local >>> 0;
        this.hitGwlbPort = meta >>> 16;
        if (i32[e + E_SEEN] !== now) Atomics.store(i32, e + E_SEEN, now);
        return len;
      }
    }
    return -1;
  }

  // ---- upsert -------------------------------------------------------------------------------------

  /** Insert the flow or refresh it (header bytes, outer IPs, port, last-seen). hdr = buf[hdrOff, hdrOff+hdrLen).
   * Returns UPSERT_*: when the table (or the place the key must go) is full, the entry idle longest there is evicted (UPSERT_EVICTED).
   * A header longer than FLOW_HEADER_MAX cannot be stored: the flow's entry, if it has one, is removed
   * (its header and cookie are no longer GWLB's latest for the 5-tuple, so a return must find no
   * flow rather than use them) and UPSERT_HEADER_TOO_LONG is returned. */
  upsert(
    key: Uint32Array,
    buf: Uint8Array,
    hdrOff: number,
    hdrLen: number,
    gwlbIp: number,
    localIp: number,
    gwlbPort: number,
    now: number,
  ): number {
    if (hdrLen > HDR_MAX) {
      this.remove(key);
      return UPSERT_HEADER_TOO_LONG;
    }
    if (!(hdrLen >= 0 && hdrOff >= 0 && hdrOff + hdrLen <= buf.length && (hdrOff | 0) === hdrOff && (hdrLen | 0) === hdrLen)) {
      throw new RangeError(`upsert: header [${hdrOff}, +${hdrLen}) outside the buffer (${buf.length})`);
    }
    this.canon(key);
    const tag = this.hashCanon();
    const h = this.hash;
    const b1 = this.bucket1(h);
    const b2 = this.bucket2(h, b1);
    // Pack the header once: compared with the stored one word by word, and written as is.
    const hw = this.hw;
    const nw = (hdrLen + 3) >>> 2;
    for (let w = 0, o = hdrOff; w < nw; w++, o += 4) {
      const rest = hdrOff + hdrLen - o;
      hw[w] =
        rest >= 4
          ? buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | (buf[o + 3] << 24)
          : buf[o] | (rest > 1 ? buf[o + 1] << 8 : 0) | (rest > 2 ? buf[o + 2] << 16 : 0);
    }
    this.wLen = hdrLen;
    this.wGwlb = gwlbIp | 0;
    this.wLocal = localIp | 0;
    this.wMeta = ((gwlbPort & 0xffff) << 16) | hdrLen;
    this.wNow = now | 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let idx = this.findKey(b1, tag);
      if (idx < 0 && b2 !== b1) idx = this.findKey(b2, tag);
      if (idx >= 0) {
        if (this.refresh(idx)) return UPSERT_REFRESHED;
        continue; // the entry changed under us: look again
      }
      const f1 = this.countFree(b1);
      const f2 = b2 === b1 ? 0 : this.countFree(b2);
      if (f1 + f2 > 0) {
        // The emptier bucket first (two-choice balancing).
        if (f1 >= f2 ? this.insertFree(b1, tag) || this.insertFree(b2, tag) : this.insertFree(b2, tag) || this.insertFree(b1, tag)) {
          return UPSERT_INSERTED;
        }
        // Every free-looking entry is locked (an insert or delete in progress, maybe by a thread
        // that was preempted mid-write): do not wait for it, displace or evict instead.
      }
      // Displacement needs a free entry somewhere; a full table (steady eviction) skips its scan.
      if (this.i32[H_SIZE] < this.capacity && this.displace(b1, b2, tag)) return UPSERT_INSERTED;
      if (this.evict(b1, b2, tag, round === MAX_ROUNDS - 1)) return UPSERT_EVICTED;
    }
    return UPSERT_BUSY;
  }

  /** Remove the flow of key (either direction), every copy of it (see "duplicate entry" at the
   * top). Gives up after MAX_ROUNDS lost races, like upsert. Returns the number removed. */
  remove(key: Uint32Array): number {
    this.canon(key);
    const tag = this.hashCanon();
    const b1 = this.bucket1(this.hash);
    const b2 = this.bucket2(this.hash, b1);
    const i32 = this.i32;
    let removed = 0;
    for (let round = 0, lost = 0; round < 2 * SLOTS + MAX_ROUNDS && lost < MAX_ROUNDS; round++) {
      let idx = this.findKey(b1, tag);
      if (idx < 0 && b2 !== b1) idx = this.findKey(b2, tag);
      if (idx < 0) break;
      const e = this.entBase + idx * E_WORDS;
      const s = this.foundState;
      // The claim from s proves that the key findKey compared is still the entry's.
      if (Atomics.compareExchange(i32, e, s, s | ST_WRITING) !== s) {
        lost++;
        continue;
      }
      if (NEED_FENCE) this.fence();
      Atomics.sub(i32, H_SIZE, 1); // while holding it (see insertFree)
      i32[HEADER_WORDS + idx] = 0;
      this.publish(e, s | ST_WRITING, 0);
      removed++;
    }
    return removed;
  }

  /** Entry index holding the canonical key in bucket b, with its state in this.foundState; or -1.
   * The match is not validated here: refresh() validates key and data together. */
  private findKey(b: number, tag: number): number {
    const i32 = this.i32;
    const ck = this.ck;
    const tb = HEADER_WORDS + b * SLOTS;
    for (let i = 0; i < SLOTS; i++) {
      if (i32[tb + i] !== tag) continue;
      const idx = b * SLOTS + i;
      const e = this.entBase + idx * E_WORDS;
      let s = Atomics.load(i32, e);
      for (let n = 0; (s & ST_WRITING) !== 0 && n < SPIN; n++) s = Atomics.load(i32, e);
      // Still locked: skip it. If it holds our key the worst case is a harmless duplicate.
      if ((s & (ST_WRITING | ST_OCC)) !== ST_OCC) continue;
      let k = 0;
      while (k < KEY_WORDS && i32[e + E_KEY + k] === ck[k]) k++;
      if (k === KEY_WORDS) {
        this.foundState = s;
        return idx;
      }
    }
    return -1;
  }

  /** Refresh entry idx (found under this.foundState) with the pending data. false: it changed under us. */
  private refresh(idx: number): boolean {
    const i32 = this.i32;
    const e = this.entBase + idx * E_WORDS;
    const s = this.foundState;
    let same = i32[e + E_GWLB] === this.wGwlb && i32[e + E_LOCAL] === this.wLocal && i32[e + E_META] === this.wMeta;
    if (same) {
      const hw = this.hw;
      const nw = (this.wLen + 3) >>> 2;
      for (let w = 0; w < nw; w++) {
        if (i32[e + E_HDR + w] !== hw[w]) {
          same = false;
          break;
        }
      }
    }
    if (same) {
      // Nothing but last-seen to update (every inbound packet of a flow whose cookie is unchanged):
      // no lock. Validate that key and data were read under one unchanged state.
      if (NEED_FENCE) this.fence();
      if (Atomics.load(i32, e) !== s) return false;
      if (i32[e + E_SEEN] !== this.wNow) Atomics.store(i32, e + E_SEEN, this.wNow);
      return true;
    }
    // Claiming from s proves key and data are still what we read (every write bumps the version).
    if (Atomics.compareExchange(i32, e, s, s | ST_WRITING) !== s) return false;
    if (NEED_FENCE) this.fence();
    this.writeData(e);
    this.publish(e, s | ST_WRITING, ST_OCC);
    return true;
  }

  private countFree(b: number): number {
    const i32 = this.i32;
    const tb = HEADER_WORDS + b * SLOTS;
    let n = 0;
    for (let i = 0; i < SLOTS; i++) if (i32[tb + i] === 0) n++;
    return n;
  }

  /** Claim a free entry of bucket b: its entry index (state in this.foundState, now locked), or -1. */
  private claimFree(b: number): number {
    const i32 = this.i32;
    const tb = HEADER_WORDS + b * SLOTS;
    for (let i = 0; i < SLOTS; i++) {
      if (i32[tb + i] !== 0) continue;
      const idx = b * SLOTS + i;
      const e = this.entBase + idx * E_WORDS;
      const s = Atomics.load(i32, e);
      if ((s & (ST_WRITING | ST_OCC)) !== 0) continue; // being inserted or deleted right now
      if (Atomics.compareExchange(i32, e, s, s | ST_WRITING) !== s) continue;
      if (NEED_FENCE) this.fence();
      this.foundState = s;
      return idx;
    }
    return -1;
  }

  private insertFree(b: number, tag: number): boolean {
    const idx = this.claimFree(b);
    if (idx < 0) return false;
    const e = this.entBase + idx * E_WORDS;
    const s = this.foundState;
    // Count while holding the entry: each entry contributes 0 or 1 to the counter and only its
    // holder changes that, so 0 <= size() <= capacity at every instant.
    Atomics.add(this.i32, H_SIZE, 1);
    this.writeKey(e);
    this.writeData(e);
    this.i32[HEADER_WORDS + idx] = tag;
    this.publish(e, s | ST_WRITING, ST_OCC);
    return true;
  }

  /** Both buckets full: move one of their entries to its other bucket if that has room, and put
   * the new key in the place it leaves. */
  private displace(b1: number, b2: number, tag: number): boolean {
    const i32 = this.i32;
    const cs = this.candState;
    const ch = this.candHash;
    const n = b2 === b1 ? SLOTS : 2 * SLOTS;
    // Three passes so that the cache misses of the 16 candidates overlap instead of queueing one
    // behind the other (this runs only when both buckets are full, i.e. above ~85% fill):
    // 1. state and hash of every candidate (one line each),
    for (let j = 0; j < n; j++) {
      const e = this.entBase + ((j < SLOTS ? b1 : b2) * SLOTS + (j & 7)) * E_WORDS;
      cs[j] = i32[e];
      ch[j] = i32[e + E_HASH];
    }
    // 2. the other bucket of each, and whether its tag line shows a free entry,
    const alt = this.candAlt;
    for (let j = 0; j < n; j++) {
      alt[j] = -1;
      if ((cs[j] & (ST_WRITING | ST_OCC)) !== ST_OCC) continue;
      const b = j < SLOTS ? b1 : b2;
      const c1 = this.bucket1(ch[j]);
      const c2 = this.bucket2(ch[j], c1);
      const a = c1 === b ? c2 : c2 === b ? c1 : -1;
      if (a >= 0 && a !== b1 && a !== b2 && this.countFree(a) !== 0) alt[j] = a;
    }
    // 3. move the first that can move.
    for (let j = 0; j < n; j++) {
      const a = alt[j];
      if (a < 0) continue;
      const s = cs[j];
      const idx = (j < SLOTS ? b1 : b2) * SLOTS + (j & 7);
      const e = this.entBase + idx * E_WORDS;
      // Lock the source first, so that its flow is never absent: it is readable here until the
      // lock, and in its new place from the copy's publication on. The claim from s also proves
      // that the hash read in pass 1 is still the entry's.
      if (Atomics.compareExchange(i32, e, s, s | ST_WRITING) !== s) continue;
      if (NEED_FENCE) this.fence();
      const fidx = this.claimFree(a);
      if (fidx < 0) {
        Atomics.compareExchange(i32, e, s | ST_WRITING, s); // content unchanged: restore as it was
        continue;
      }
      const f = this.entBase + fidx * E_WORDS;
      const sf = this.foundState;
      Atomics.add(i32, H_SIZE, 1); // the copy is a new entry; the source keeps its count for the new key
      for (let w = 1; w < E_WORDS; w++) i32[f + w] = i32[e + w];
      i32[HEADER_WORDS + fidx] = i32[HEADER_WORDS + idx];
      this.publish(f, sf | ST_WRITING, ST_OCC);
      this.writeKey(e);
      this.writeData(e);
      i32[HEADER_WORDS + idx] = tag;
      this.publish(e, s | ST_WRITING, ST_OCC);
      return true;
    }
    return false;
  }

  /** Overwrite the entry idle longest among both buckets. force: evict even if a lookup refreshed
   * the victim after we picked it (last round, so that upsert ends). */
  private evict(b1: number, b2: number, tag: number, force: boolean): boolean {
    const i32 = this.i32;
    const now = this.wNow;
    let victim = -1;
    let vs = 0;
    let vSeen = 0;
    let vAge = 0;
    for (let pass = 0; pass < 2; pass++) {
      const b = pass === 0 ? b1 : b2;
      if (pass === 1 && b2 === b1) break;
      for (let i = 0; i < SLOTS; i++) {
        const idx = b * SLOTS + i;
        const e = this.entBase + idx * E_WORDS;
        const s = i32[e];
        if ((s & (ST_WRITING | ST_OCC)) !== ST_OCC) continue;
        const seen = i32[e + E_SEEN];
        // Wrap-safe tick difference; negative when another thread's clock is a tick ahead of ours.
        const age = (now - seen) | 0;
        if (victim < 0 || age > vAge) {
          vAge = age;
          victim = idx;
          vs = s;
          vSeen = seen;
        }
      }
    }
    if (victim < 0) return false; // everything locked right now
    const e = this.entBase + victim * E_WORDS;
    if (Atomics.compareExchange(i32, e, vs, vs | ST_WRITING) !== vs) return false;
    if (NEED_FENCE) this.fence();
    if (!force && i32[e + E_SEEN] !== vSeen) {
      // Used since we picked it: no longer the idle-longest. Release it unchanged and look again.
      Atomics.compareExchange(i32, e, vs | ST_WRITING, vs);
      return false;
    }
    this.writeKey(e);
    this.writeData(e);
    i32[HEADER_WORDS + victim] = tag;
    this.publish(e, vs | ST_WRITING, ST_OCC);
    return true;
  }

  private writeKey(e: number): void {
    const i32 = this.i32;
    const ck = this.ck;
    i32[e + E_HASH] = this.hash;
    for (let k = 0; k < KEY_WORDS; k++) i32[e + E_KEY + k] = ck[k];
  }

  private writeData(e: number): void {
    const i32 = this.i32;
    i32[e + E_SEEN] = this.wNow;
    i32[e + E_GWLB] = this.wGwlb;
    i32[e + E_LOCAL] = this.wLocal;
    i32[e + E_META] = this.wMeta;
    const hw = this.hw;
    const nw = (this.wLen + 3) >>> 2;
    for (let w = 0; w < nw; w++) i32[e + E_HDR + w] = hw[w];
  }

  /** Unlock entry e (locked as `locked`) with the next version and occupancy occ. */
  private publish(e: number, locked: number, occ: number): void {
    // compareExchange rather than store: if sweep() reclaimed the entry as stuck (STUCK_TICKS), our
    // write is void and must not overwrite the new owner's state.
    Atomics.compareExchange(this.i32, e, locked, ((locked & ~3) + 4) | occ);
  }

  // ---- sweep --------------------------------------------------------------------------------------

  /** Incremental expiry: examine the next `budget` buckets (continuing where the last call stopped,
   * wrapping), remove entries idle longer than tcpIdle (protocol 6) / otherIdle (others) ticks, and
   * entries whose endpoint id is no longer live: liveEndpoint(id) false (pass null to skip that check).
   * Returns the number removed. Called by the main thread every 100 ms with budget = buckets/10 or so.
   * liveEndpoint receives the endpoint id as an unsigned 32-bit number (as in key[0]). */
  sweep(
    now: number,
    tcpIdle: number,
    otherIdle: number,
    budget: number,
    liveEndpoint: ((epId: number) => boolean) | null,
  ): number {
    const i32 = this.i32;
    const nb = this.buckets;
    let n = Math.floor(budget);
    if (!(n > 0)) return 0;
    if (n > nb) n = nb;
    now |= 0;
    let b = Atomics.load(i32, H_CURSOR);
    if (!(b >= 0 && b < nb)) b = 0;
    let removed = 0;
    // Consecutive entries mostly belong to few endpoints: remember the last answer.
    let lastEp = 0;
    let lastLive = true;
    let haveLast = false;
    // Screen by tag (issue 20): an occupied entry always has a non-zero tag (set before its
    // publish, cleared only by its remover while holding it), and the 8 tags of a bucket share one
    // cache line, where the state words are 8 lines apart. Reading the state of every entry made a
    // slice of a 1M-flow table cost ~1.4 ms of main-thread CPU even when empty (110,000 cache
    // misses every 100 ms, 1.8% of a CPU idle), a burst that delays the worker whenever both share
    // a CPU; screened, an empty slice costs ~0.1 ms and the cost follows the flows present. What
    // the screen cannot see: an entry left locked with tag 0 by a writer that died between its
    // claim and its tag store (or its remover, between the tag's clearing and its publish). Those
    // exist only after a worker died: suspectStuck() then makes the next two passes read every
    // state word, and so does any pass while an entry is being watched as stuck.
    const screen = this.fullPasses === 0 && this.stuck.size === 0;
    for (; n > 0; n--) {
      for (let i = 0; i < SLOTS; i++) {
        const idx = b * SLOTS + i;
        if (screen && i32[HEADER_WORDS + idx] === 0) continue;
        const e = this.entBase + idx * E_WORDS;
        const s = i32[e]; // screening read; everything is re-checked after the claim
        if ((s & ST_WRITING) !== 0) {
          if (this.checkStuck(idx, e, s, now)) removed++;
          continue;
        }
        if (this.stuck.size !== 0) this.stuck.delete(idx);
        if ((s & ST_OCC) === 0) continue;
        const limit = (i32[e + E_PROTO] & 0xff) === 6 ? tcpIdle : otherIdle;
        const idle = ((now - i32[e + E_SEEN]) | 0) > limit;
        let dead = false;
        if (!idle && liveEndpoint !== null) {
          const ep = i32[e + E_KEY] >>> 0;
          if (!haveLast || ep !== lastEp) {
            lastEp = ep;
            lastLive = liveEndpoint(ep); // never called while holding an entry
            haveLast = true;
          }
          dead = !lastLive;
        }
        if (!idle && !dead) continue;
        // The claim from s proves that protocol and endpoint id, read after s, are still the entry's.
        if (Atomics.compareExchange(i32, e, s, s | ST_WRITING) !== s) continue;
        if (NEED_FENCE) this.fence();
        // Re-check the idle time: a lookup may have refreshed last-seen since the screening read.
        if (!dead && ((now - i32[e + E_SEEN]) | 0) <= limit) {
          Atomics.compareExchange(i32, e, s | ST_WRITING, s); // unchanged: restore as it was
          continue;
        }
        Atomics.sub(i32, H_SIZE, 1); // while holding it (see insertFree)
        i32[HEADER_WORDS + idx] = 0;
        this.publish(e, s | ST_WRITING, 0);
        removed++;
      }
      if (++b === nb) {
        b = 0;
        if (this.fullPasses > 0) this.fullPasses--;
      }
    }
    Atomics.store(i32, H_CURSOR, b);
    return removed;
  }

  /** A writer may have died holding an entry (a worker exited): the next two full passes of
   * sweep() read every entry's state, tag or not, so that an entry locked with tag 0 is reclaimed
   * (after STUCK_TICKS, as any stuck entry). Called by the main thread. */
  suspectStuck(): void {
    this.fullPasses = 2;
  }

  // ---- hand-over snapshot (src/control/handover.ts) -----------------------------------------------
  // A record is an occupied entry's words 2-31 (key, last-seen, outer IPs, meta, header), as stored:
  // no hash and no state, since the table that restores it hashes with its own seed. Last-seen is a
  // tick of the machine's monotonic clock (src/base/clock.ts), the same in every process, so an
  // idle time survives the hand-over unchanged. Records are written into one Int32Array given by
  // the caller: no allocation per flow, on either side.

  /** Copy every occupied entry into `out` as SNAPSHOT_RECORD_WORDS-word records (seqlock-read: an
   * entry being written is read again, up to READ_TRIES times, then left out); returns the number
   * of records, at most out.length / SNAPSHOT_RECORD_WORDS. Meant for a table no thread writes
   * (the hand-over stops the workers first); concurrent writers make it miss a flow at worst. */
  snapshotInto(out: Int32Array): number {
    const i32 = this.i32;
    const cap = this.capacity;
    const max = Math.floor(out.length / SNAPSHOT_RECORD_WORDS);
    let n = 0;
    for (let idx = 0; idx < cap && n < max; idx++) {
      if (i32[HEADER_WORDS + idx] === 0) continue; // an occupied entry always has a tag (see sweep)
      const e = this.entBase + idx * E_WORDS;
      const o = n * SNAPSHOT_RECORD_WORDS;
      for (let t = 0; t < READ_TRIES; t++) {
        const s1 = Atomics.load(i32, e);
        if ((s1 & (ST_WRITING | ST_OCC)) !== ST_OCC) {
          if ((s1 & ST_WRITING) !== 0) continue;
          break; // free
        }
        for (let w = 0; w < SNAPSHOT_RECORD_WORDS; w++) out[o + w] = i32[e + E_KEY + w];
        if (NEED_FENCE) this.fence();
        if (Atomics.load(i32, e) !== s1) continue;
        n++;
        break;
      }
    }
    return n;
  }

  /** Insert the flow of one snapshot record (rec[off, off + SNAPSHOT_RECORD_WORDS)) under this
   * table's seed, with its last-seen as recorded. A flow already present is left as it is (a
   * duplicate entry of the old table: see "duplicate entry" at the top). Returns UPSERT_INSERTED,
   * UPSERT_EVICTED (no room: the idle-longest of its buckets gave way), UPSERT_REFRESHED (present
   * already, unchanged) or RESTORE_INVALID (a header length over 60: not a record; skipped). */
  restore(rec: Int32Array, off: number): number {
    const ck = this.ck;
    for (let k = 0; k < KEY_WORDS; k++) ck[k] = rec[off + k];
    const meta = rec[off + E_META - E_KEY];
    const len = meta & 0xffff;
    if (len > HDR_MAX) return RESTORE_INVALID;
    const tag = this.hashCanon();
    const b1 = this.bucket1(this.hash);
    const b2 = this.bucket2(this.hash, b1);
    if (this.findKey(b1, tag) >= 0 || (b2 !== b1 && this.findKey(b2, tag) >= 0)) return UPSERT_REFRESHED;
    const hw = this.hw;
    for (let w = 0; w < HDR_WORDS; w++) hw[w] = rec[off + E_HDR - E_KEY + w];
    this.wLen = len;
    this.wGwlb = rec[off + E_GWLB - E_KEY];
    this.wLocal = rec[off + E_LOCAL - E_KEY];
    this.wMeta = meta;
    this.wNow = rec[off + E_SEEN - E_KEY];
    const f1 = this.countFree(b1);
    const f2 = b2 === b1 ? 0 : this.countFree(b2);
    if (f1 + f2 > 0 && (f1 >= f2 ? this.insertFree(b1, tag) || this.insertFree(b2, tag) : this.insertFree(b2, tag) || this.insertFree(b1, tag))) return UPSERT_INSERTED;
    if (this.i32[H_SIZE] < this.capacity && this.displace(b1, b2, tag)) return UPSERT_INSERTED;
    return this.evict(b1, b2, tag, true) ? UPSERT_EVICTED : RESTORE_INVALID;
  }

  /** Flows per endpoint and family, for status pages (never on the packet path): counts into `out`
   * (cleared first) under the key endpointId * 2 + (IPv6 ? 1 : 0). Reads the tag words and, only
   * for entries whose tag is set, the entry's state and key words: one pass over the table (at
   * 1,000,000 flows a few tens of ms), so callers cache the result (src/ops/status.ts: at most once
   * a second). Entries being written are skipped, so a count may be off by the few in flight. */
  countByEndpoint(out: Map<number, number>): Map<number, number> {
    out.clear();
    const i32 = this.i32;
    const cap = this.capacity;
    for (let idx = 0; idx < cap; idx++) {
      if (i32[HEADER_WORDS + idx] === 0) continue;
      const e = this.entBase + idx * E_WORDS;
      const s = i32[e];
      if ((s & (ST_OCC | ST_WRITING)) !== ST_OCC) continue;
      const k = (i32[e + E_KEY] >>> 0) * 2 + (((i32[e + E_PROTO] >>> 8) & 0xff) === 6 ? 1 : 0);
      out.set(k, (out.get(k) ?? 0) + 1);
    }
    return out;
  }

  /** Entry idx is locked (state s): reclaim it if it has stayed locked, same state, STUCK_TICKS. */
  private checkStuck(idx: number, e: number, s: number, now: number): boolean {
    const seen = this.stuck.get(idx);
    if (seen === undefined || seen[0] !== s) {
      this.stuck.set(idx, [s, now]);
      return false;
    }
    if (((now - seen[1]) | 0) < STUCK_TICKS) return false;
    this.stuck.delete(idx);
    const i32 = this.i32;
    if (Atomics.compareExchange(i32, e, s, (s & ~3) + 4) !== s) return false;
    // The dead writer either held a flow (occupied before: counted) or was inserting one (counted
    // right after its claim): either way uncount it. Off by one only if it died within the few
    // instructions between its claim and its counter update.
    Atomics.sub(i32, H_SIZE, 1);
    i32[HEADER_WORDS + idx] = 0;
    return true;
  }
}

/** One murmur3 body round. */
function mixk(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
