// The hold ring: packets of endpoints whose CREATE hook has not finished yet, kept in arrival
// order until the endpoint is ready (delivered), refused (dropped) or they are too old (dropped).
//
// Contract:
// - A FIFO of entries over one preallocated arena of bytes. add() copies the packet in; space is
//   reclaimed as the oldest entries leave. Bounded three ways: `entries` packets, `bytes` bytes,
//   and `perEndpoint` packets per endpoint (counted in the `held` array given, one cell per
//   endpoint entry, which the ring keeps up to date).
// - release(owner, visit) hands every held packet of one owner to `visit`, oldest first, and
//   forgets them; visit may call add() again (a delivered packet is never re-held in practice,
//   but the ring stays consistent if it is).
// - expire(nowMs, holdMs) drops what is older than holdMs from the head; it stops at the first
//   packet still young enough (arrival order is time order), so one call is O(expired).
// - `live` is the number of packets held right now. Nothing is allocated per packet.

export type HoldVisit = (buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number) => void;

export class HoldRing {
  /** Packets held right now. */
  live = 0;
  private readonly arena: Uint8Array;
  private readonly off: Int32Array;
  private readonly len: Int32Array;
  private readonly src: Int32Array;
  private readonly dst: Int32Array;
  private readonly sport: Int32Array;
  private readonly owner: Int32Array; // -1 once delivered, dropped or expired
  private readonly ms: Float64Array;
  private head = 0; // oldest entry
  private count = 0; // entries between head and tail, including those already gone (owner -1)
  private tail = 0; // next free byte in the arena

  constructor(
    private readonly held: Int32Array,
    private readonly perEndpoint: number,
    private readonly entries = 4096,
    private readonly bytes = 8 * 1024 * 1024,
  ) {
    this.arena = new Uint8Array(bytes);
    this.off = new Int32Array(entries);
    this.len = new Int32Array(entries);
    this.src = new Int32Array(entries);
    this.dst = new Int32Array(entries);
    this.sport = new Int32Array(entries);
    this.owner = new Int32Array(entries);
    this.ms = new Float64Array(entries);
  }

  /** Anything queued (also entries already gone but not yet reclaimed)? */
  get busy(): boolean {
    return this.count !== 0;
  }

  /** Hold a copy of buf[off, off+len) for `owner`; false when a bound is hit (not held). */
  add(buf: Uint8Array, off: number, len: number, src: number, dst: number, sport: number, owner: number, nowMs: number): boolean {
    if (this.held[owner] >= this.perEndpoint || this.count === this.entries) return false;
    const at = this.alloc(len);
    if (at < 0) return false;
    this.arena.set(buf.subarray(off, off + len), at);
    this.tail = at + len;
    const e = (this.head + this.count) % this.entries;
    this.off[e] = at;
    this.len[e] = len;
    this.src[e] = src;
    this.dst[e] = dst;
    this.sport[e] = sport;
    this.owner[e] = owner;
    this.ms[e] = nowMs;
    this.count++;
    this.held[owner]++;
    this.live++;
    return true;
  }

  /** Hand every packet of `owner` to visit, oldest first, and forget them. Returns how many. */
  release(owner: number, visit: HoldVisit): number {
    if (this.held[owner] === 0) return 0;
    let n = 0;
    for (let k = 0; k < this.count; k++) {
      const e = (this.head + k) % this.entries;
      if (this.owner[e] !== owner) continue;
      this.owner[e] = -1;
      this.live--;
      n++;
      visit(this.arena, this.off[e], this.len[e], this.src[e], this.dst[e], this.sport[e]);
    }
    this.held[owner] = 0;
    this.advance();
    return n;
  }

  /** Drop packets held longer than holdMs; returns how many. */
  expire(nowMs: number, holdMs: number): number {
    let n = 0;
    while (this.count > 0) {
      const e = this.head;
      const owner = this.owner[e];
      if (owner >= 0) {
        if (nowMs - this.ms[e] < holdMs) break;
        this.held[owner]--;
        this.owner[e] = -1;
        this.live--;
        n++;
      }
      this.head = (this.head + 1) % this.entries;
      this.count--;
    }
    return n;
  }

  private advance(): void {
    while (this.count > 0 && this.owner[this.head] < 0) {
      this.head = (this.head + 1) % this.entries;
      this.count--;
    }
  }

  /** Offset in the arena for len bytes, or -1. The arena is a ring: entries are contiguous, and
   * a packet that does not fit before the end starts again at 0 if the oldest is far enough. */
  private alloc(len: number): number {
    if (this.count === 0) {
      this.tail = 0;
      return len <= this.bytes ? 0 : -1;
    }
    const headOff = this.off[this.head];
    if (this.tail >= headOff) {
      if (this.tail + len <= this.bytes) return this.tail;
      if (len < headOff) return 0; // wrap
      return -1;
    }
    return this.tail + len < headOff ? this.tail : -1;
  }
}
