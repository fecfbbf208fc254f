// The lab GWLB's flow table: one entry per symmetric 5-tuple (3-tuple for protocols without
// ports), holding what GWLB gives each flow (docs/lab.md): its UDP source port, its cookie and so
// the complete Geneve header sent with every packet of the flow, in both directions.
//
// Deliberately independent of the daemon's flow table (src/flow/table.ts): the lab checks the
// daemon, so it must not share its code. Single-threaded, fixed size, allocated once; a lookup
// scans a window of PROBE entries from the key's hash; a new flow takes the first free entry of
// its window, or the least recently used one (its flow is forgotten: bounded memory). Keys are
// the flow keys of src/wire/flowkey.ts (words 1..10), canonicalised so that A->B and B->A meet.

import { GENEVE_PORT, writeGeneveHeader } from '../wire/geneve';

/** Geneve header as GWLB sends it: 8 bytes + ENI (12) + attachment (12) + cookie (8). */
export const LAB_GENEVE_LEN = 40;
const COOKIE_AT = 36;
const KW = 10; // canonical key words: family<<8|proto, A (4), B (4), portA<<16|portB
const PROBE = 8;
/** GWLB source ports handed to flows, in turn. */
const PORT_FIRST = 10000;
const PORT_COUNT = 50000;

export class LabFlows {
  readonly capacity: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  private readonly used: Uint8Array;
  private readonly lastUse: Float64Array;
  /** Per entry: the GWLB UDP source port of the flow. */
  readonly port: Int32Array;
  /** Per entry: the flow's Geneve header, LAB_GENEVE_LEN bytes at entry * LAB_GENEVE_LEN. */
  readonly hdr: Uint8Array;
  private readonly template = new Uint8Array(LAB_GENEVE_LEN);
  private readonly ck = new Uint32Array(KW);
  private rng: number;
  private nextPort = 0;
  /** Flows created, and flows forgotten to make room. */
  created = 0;
  evicted = 0;
  live = 0;

  /** capacity: a power of two, at least PROBE. Cookies are random except their low bits, which
   * are the entry index (so a packet that carries a flow's header but not its 5-tuple, such as an
   * ICMP error, can still be tied to it: byCookie). */
  constructor(capacity: number, eni: bigint, attachment: bigint, seed: number) {
    if (!Number.isInteger(Math.log2(capacity)) || capacity < PROBE || capacity > 1 << 16) throw new RangeError('capacity must be a power of two in 8..65536');
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.keys = new Uint32Array(capacity * KW);
    this.used = new Uint8Array(capacity);
    this.lastUse = new Float64Array(capacity);
    this.port = new Int32Array(capacity);
    this.hdr = new Uint8Array(capacity * LAB_GENEVE_LEN);
    const n = writeGeneveHeader(this.template, 0, { protocol: 0x0800, eni, attachment, cookie: 0 });
    if (n !== LAB_GENEVE_LEN) throw new Error(`unexpected Geneve header length ${n}`);
    this.rng = seed >>> 0 || 0x9e3779b9;
  }

  /** The entry of the flow of `key` (flowkey words 1..10), or -1. */
  find(key: Uint32Array, now: number): number {
    const start = this.canon(key);
    for (let i = 0; i < PROBE; i++) {
      const e = (start + i) & this.mask;
      if (this.used[e] === 1 && this.same(e)) {
        this.lastUse[e] = now;
        return e;
      }
    }
    return -1;
  }

  /** The entry of the flow of `key`, created (new port, new cookie) when it is not there. */
  findOrCreate(key: Uint32Array, now: number): number {
    const start = this.canon(key);
    let free = -1;
    let oldest = -1;
    for (let i = 0; i < PROBE; i++) {
      const e = (start + i) & this.mask;
      if (this.used[e] === 1) {
        if (this.same(e)) {
          this.lastUse[e] = now;
          return e;
        }
        if (oldest < 0 || this.lastUse[e] < this.lastUse[oldest]) oldest = e;
      } else if (free < 0) free = e;
    }
    let e = free;
    if (e < 0) {
      e = oldest;
      this.evicted++;
    } else this.live++;
    const ck = this.ck;
    const k = e * KW;
    for (let w = 0; w < KW; w++) this.keys[k + w] = ck[w];
    this.used[e] = 1;
    this.lastUse[e] = now;
    this.port[e] = PORT_FIRST + this.nextPort;
    this.nextPort = this.nextPort + 1 === PORT_COUNT ? 0 : this.nextPort + 1;
    // xorshift32 for the cookie's random high bits.
    let r = this.rng;
    r ^= r << 13;
    r ^= r >>> 17;
    r ^= r << 5;
    this.rng = r >>> 0;
    const cookie = ((this.rng & ~this.mask) | e) >>> 0;
    const h = e * LAB_GENEVE_LEN;
    const hdr = this.hdr;
    for (let i = 0; i < LAB_GENEVE_LEN; i++) hdr[h + i] = this.template[i];
    const v6 = ck[0] >>> 8 === 6;
    hdr[h + 2] = v6 ? 0x86 : 0x08;
    hdr[h + 3] = v6 ? 0xdd : 0x00;
    hdr[h + COOKIE_AT] = cookie >>> 24;
    hdr[h + COOKIE_AT + 1] = (cookie >>> 16) & 0xff;
    hdr[h + COOKIE_AT + 2] = (cookie >>> 8) & 0xff;
    hdr[h + COOKIE_AT + 3] = cookie & 0xff;
    this.created++;
    return e;
  }

  /** The entry whose cookie the Geneve header at buf[off] carries, if that entry's header is
   * byte-identical to it; else -1. */
  byCookie(buf: Uint8Array, off: number): number {
    const e = ((buf[off + COOKIE_AT + 2] << 8) | buf[off + COOKIE_AT + 3]) & this.mask;
    return this.used[e] === 1 && this.sameHeader(e, buf, off) ? e : -1;
  }

  /** True when buf[off, off + LAB_GENEVE_LEN) equals the header of entry e. */
  sameHeader(e: number, buf: Uint8Array, off: number): boolean {
    const h = e * LAB_GENEVE_LEN;
    const hdr = this.hdr;
    for (let i = 0; i < LAB_GENEVE_LEN; i++) if (buf[off + i] !== hdr[h + i]) return false;
    return true;
  }

  /** Cookie of entry e. */
  cookie(e: number): number {
    const h = e * LAB_GENEVE_LEN + COOKIE_AT;
    return ((this.hdr[h] << 24) | (this.hdr[h + 1] << 16) | (this.hdr[h + 2] << 8) | this.hdr[h + 3]) >>> 0;
  }

  private same(e: number): boolean {
    const k = e * KW;
    const ck = this.ck;
    for (let w = 0; w < KW; w++) if (this.keys[k + w] !== ck[w]) return false;
    return true;
  }

  /** Canonical key of `key` into this.ck (smaller (address, port) end first); returns its hash. */
  private canon(key: Uint32Array): number {
    const ck = this.ck;
    const sp = key[10] >>> 16;
    const dp = key[10] & 0xffff;
    let swap = false;
    let decided = false;
    for (let w = 0; w < 4; w++) {
      const a = key[2 + w] >>> 0;
      const b = key[6 + w] >>> 0;
      if (a !== b) {
        swap = a > b;
        decided = true;
        break;
      }
    }
    if (!decided) swap = sp > dp;
    ck[0] = key[1];
    for (let w = 0; w < 4; w++) {
      ck[1 + w] = swap ? key[6 + w] : key[2 + w];
      ck[5 + w] = swap ? key[2 + w] : key[6 + w];
    }
    ck[9] = swap ? ((dp << 16) | sp) >>> 0 : key[10] >>> 0;
    let h = 0x811c9dc5 ^ GENEVE_PORT;
    for (let w = 0; w < KW; w++) {
      h = Math.imul(h ^ ck[w], 0x01000193);
      h ^= h >>> 15;
    }
    return h & this.mask;
  }
}
