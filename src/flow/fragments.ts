// The datagram table: which flow (ports) each recent fragmented datagram belongs to
// (docs/architecture.md, "Fragments"). Only the first fragment of a datagram carries its TCP/UDP
// ports; later fragments carry the datagram's identification instead. The first fragment records
// (endpoint, family, protocol, source, destination, identification) -> ports here; later fragments
// look the ports up, and with them the flow's 5-tuple.
//
// One table per worker (not shared): the kernel queues every fragment of a datagram on the same
// TUN queue (its flow hash of a fragment has no ports), and the worker that receives a datagram
// from GWLB also reads its fragments back when the appliance forwards them (one worker), so
// both directions fill and read the same table.
//
// Bounded and allocation-free: a fixed number of entries in sets of WAYS, preallocated typed arrays,
// number keys. An entry expires ttlTicks after it was recorded (fragments of one datagram arrive
// within milliseconds; the kernel itself gives up reassembly after 30 s for IPv4, 60 s for IPv6).
// A new datagram takes a free or expired entry of its set, else the oldest one (an eviction, which
// the caller counts).
//
// The set is a hash of the key and identification seeded with a random number drawn once per table
// (per worker, at start), so that datagrams cannot be chosen offline to crowd one set and evict the
// datagrams of other flows (docs/security.md); the seed takes the place of a constant, at no cost.

import { KEY_WORDS } from '../wire/flowkey';
import { randomHashSeed } from './table';

const WAYS = 4;
/** Words of a stored key: flow key words 0..9 (endpoint, family/protocol, addresses) and the id. */
const W = KEY_WORDS;

export const DATAGRAM_TABLE_DEFAULT_ENTRIES = 4096;
/** Entry lifetime in clock ticks (100 ms, src/base/clock.ts): 3 s. */
export const DATAGRAM_TTL_TICKS = 30;

export class DatagramTable {
  readonly capacity: number;
  private readonly setMask: number;
  private readonly keys: Uint32Array;
  private readonly ports: Uint32Array;
  private readonly stamp: Int32Array;
  private readonly used: Uint8Array;
  private readonly ttl: number;
  /** The set hash's seed (int32). */
  readonly seed: number;

  /** entries: rounded up to a power of two, at least WAYS. seed: a uint32, by default a random one
   * (pass one only to reproduce a layout, in tests). */
  constructor(entries = DATAGRAM_TABLE_DEFAULT_ENTRIES, ttlTicks = DATAGRAM_TTL_TICKS, seed: number = randomHashSeed()) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`hash seed must be a uint32, got ${seed}`);
    this.seed = seed | 0;
    let cap = WAYS;
    while (cap < entries) cap *= 2;
    this.capacity = cap;
    this.setMask = cap / WAYS - 1;
    this.keys = new Uint32Array(cap * W);
    this.ports = new Uint32Array(cap);
    this.stamp = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.ttl = ttlTicks;
  }

  /** Record that datagram `id` of the flow key's endpoint, protocol and addresses (key[0..9]; key[10]
   * is ignored) carries `ports`. Returns true when a live entry of another datagram was evicted. */
  record(key: Uint32Array, id: number, ports: number, now: number): boolean {
    const base = this.setOf(key, id) * WAYS;
    let free = -1;
    let oldest = base;
    for (let e = base; e < base + WAYS; e++) {
      if (this.used[e] === 0 || ((now - this.stamp[e]) | 0) > this.ttl) {
        if (free < 0) free = e;
        continue;
      }
      if (this.matches(e, key, id)) {
        this.ports[e] = ports;
        this.stamp[e] = now;
        return false;
      }
      if (((this.stamp[e] - this.stamp[oldest]) | 0) < 0 || this.used[oldest] === 0) oldest = e;
    }
    const e = free >= 0 ? free : oldest;
    const k = e * W;
    for (let i = 0; i < 10; i++) this.keys[k + i] = key[i];
    this.keys[k + 10] = id;
    this.ports[e] = ports;
    this.stamp[e] = now;
    this.used[e] = 1;
    return free < 0;
  }

  /** The ports recorded for the datagram, or -1 when it is unknown or expired. */
  find(key: Uint32Array, id: number, now: number): number {
    const base = this.setOf(key, id) * WAYS;
    for (let e = base; e < base + WAYS; e++) {
      if (this.used[e] !== 0 && ((now - this.stamp[e]) | 0) <= this.ttl && this.matches(e, key, id)) return this.ports[e];
    }
    return -1;
  }

  /** Live entries (for tests and diagnostics; scans the whole table). */
  live(now: number): number {
    let n = 0;
    for (let e = 0; e < this.capacity; e++) if (this.used[e] !== 0 && ((now - this.stamp[e]) | 0) <= this.ttl) n++;
    return n;
  }

  private matches(e: number, key: Uint32Array, id: number): boolean {
    const k = e * W;
    const ks = this.keys;
    if (ks[k + 10] !== id >>> 0 || ks[k + 2] !== key[2] || ks[k + 6] !== key[6] || ks[k + 1] !== key[1] || ks[k] !== key[0]) return false;
    return ks[k + 3] === key[3] && ks[k + 4] === key[4] && ks[k + 5] === key[5] && ks[k + 7] === key[7] && ks[k + 8] === key[8] && ks[k + 9] === key[9];
  }

  /** The set (0 .. capacity / WAYS - 1) of a datagram: for record/find, and for tests. */
  setOf(key: Uint32Array, id: number): number {
    let h = Math.imul(id ^ this.seed, 0xcc9e2d51);
    for (let i = 0; i < 10; i++) {
      h ^= Math.imul(key[i], 0x1b873593);
      h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h & this.setMask;
  }
}
