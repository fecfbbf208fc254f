// A worker's own table of endpoints: the ENI IDs it has seen, by state, with the TUN queues the
// main thread gave it for the ready ones.
//
// Contract:
// - find(hi, lo) is the per-packet lookup: number keys only (the low 32 bits of the ENI ID key a
//   Map, entries sharing them are chained), and the last hit is cached, so a batch of one
//   endpoint's packets costs one comparison each.
// - Bounded: at most `capacity` entries (the endpoint limit plus room for ENI IDs waiting for or
//   refused by the main thread); add() returns -1 when full.
// - Entries are plain indices into parallel typed arrays (fields below), which the packet loop
//   reads directly; no object per endpoint, nothing allocated per packet.

import { Drop } from '../wire/reasons';

export const ST_FREE = 0;
export const ST_PENDING = 1; // main thread told ('new'), waiting for 'add' or 'reject'
export const ST_READY = 2;
export const ST_REJECTED = 3; // over the endpoint limit or creation failed; forgotten after a while

/** The drop reason of a rejected entry, by its `failed` value. */
export const REJECT_REASONS: readonly number[] = [Drop.ENDPOINT_LIMIT, Drop.ENDPOINT_FAILED, Drop.ENDPOINT_UNLISTED];

export class LocalEndpoints {
  readonly capacity: number;
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly state: Uint8Array;
  /** Why it was rejected, as an index into REJECT_REASONS: the endpoint limit (0), creation
   * failed (1), not in the endpoints file with --endpoints-only (2). */
  readonly failed: Uint8Array;
  /** The main thread's slot (counters, flow ids) and endpoint id (slot | generation << 16). */
  readonly slot: Int32Array;
  readonly epId: Int32Array;
  /** This worker's queue of gwi-<X> and gwo-<X> (-1: none). */
  readonly gwi: Int32Array;
  readonly gwo: Int32Array;
  /** Packets held for it while it is being created. */
  readonly held: Int32Array;
  /** When it entered its state (monotonic ms). */
  readonly sinceMs: Float64Array;
  /** Ready entry of each main-thread slot (-1: none). */
  readonly bySlot: Int32Array;
  /** TUN fd -> entry, for epoll readiness. */
  readonly byFd = new Map<number, number>();

  private readonly next: Int32Array; // chain of entries sharing the low 32 bits
  private readonly byLo = new Map<number, number>();
  private readonly free: number[] = [];
  private lastHi = -1;
  private lastLo = -1;
  private lastI = -1;

  constructor(maxEndpoints: number, extra = 1024) {
    const n = (this.capacity = maxEndpoints + extra);
    this.hi = new Uint32Array(n);
    this.lo = new Uint32Array(n);
    this.state = new Uint8Array(n);
    this.failed = new Uint8Array(n);
    this.slot = new Int32Array(n).fill(-1);
    this.epId = new Int32Array(n);
    this.gwi = new Int32Array(n).fill(-1);
    this.gwo = new Int32Array(n).fill(-1);
    this.held = new Int32Array(n);
    this.sinceMs = new Float64Array(n);
    this.next = new Int32Array(n).fill(-1);
    this.bySlot = new Int32Array(maxEndpoints).fill(-1);
    for (let i = n - 1; i >= 0; i--) this.free.push(i);
  }

  /** The entry of an ENI ID, or -1. */
  find(hi: number, lo: number): number {
    if (hi === this.lastHi && lo === this.lastLo) return this.lastI;
    let i = this.byLo.get(lo);
    while (i !== undefined && i >= 0) {
      if (this.hi[i] === hi) {
        this.lastHi = hi;
        this.lastLo = lo;
        this.lastI = i;
        return i;
      }
      i = this.next[i];
    }
    return -1;
  }

  /** A new entry in `state`, or -1 when the table is full. */
  add(hi: number, lo: number, state: number, nowMs: number): number {
    const i = this.free.pop();
    if (i === undefined) return -1;
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.state[i] = state;
    this.failed[i] = 0;
    this.slot[i] = -1;
    this.gwi[i] = -1;
    this.gwo[i] = -1;
    this.held[i] = 0;
    this.sinceMs[i] = nowMs;
    const head = this.byLo.get(lo);
    this.next[i] = head === undefined ? -1 : head;
    this.byLo.set(lo, i);
    return i;
  }

  /** Forget an entry (its queues, if any, must have been taken out of epoll first). */
  remove(i: number): void {
    const lo = this.lo[i];
    let cur = this.byLo.get(lo);
    let prev = -1;
    while (cur !== undefined && cur >= 0) {
      if (cur === i) {
        if (prev < 0) {
          if (this.next[i] < 0) this.byLo.delete(lo);
          else this.byLo.set(lo, this.next[i]);
        } else this.next[prev] = this.next[i];
        break;
      }
      prev = cur;
      cur = this.next[cur];
    }
    this.state[i] = ST_FREE;
    this.next[i] = -1;
    if (this.lastI === i) {
      this.lastHi = -1;
      this.lastLo = -1;
      this.lastI = -1;
    }
    this.free.push(i);
  }

  /** Entries in use (for tests and metrics). */
  get used(): number {
    return this.capacity - this.free.length;
  }
}
