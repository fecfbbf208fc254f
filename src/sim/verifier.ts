// Verification of the datagrams the appliance returns to "GWLB". Fed raw bytes plus the
// receive metadata, so it works the same on packets from a socket and on bytes built by a test.
//
// Hot path (verify): no allocation; typed arrays and Buffer.compare on preallocated views
// (a native memcmp with offsets, no subarray objects).

import { GeneveInfo, parseGeneve } from '../wire/geneve';
import { FlowPlan, SEQ_FIELD_LEN, seqComp } from './flows';

/** Why a returned datagram failed verification, as counter indices. REORDERED is special: the
 * packet is good and also counted as verified; it is tallied to show ordering within a flow. */
export const Bad = {
  TOO_SHORT: 1, // shorter than the flow's Geneve header
  TRUNCATED: 2, // larger than a receive slot
  BAD_SOURCE: 3, // outer source IP is not the appliance
  BAD_DESTINATION: 4, // outer destination (IP_PKTINFO) is not the GWLB address
  UNKNOWN_PORT: 5, // UDP source port is no flow's GWLB port
  WRONG_ENDPOINT: 6, // header differs and carries another endpoint's ENI ID (or none parseable)
  BAD_HEADER: 7, // Geneve header not byte-identical to the flow's current header
  INNER_MISMATCH: 8, // inner packet differs from what was sent (after ttlDecrement hops)
  UNKNOWN_SEQ: 9, // payload sequence number never sent on that flow
  STALE_PHASE: 10, // current header, but a sequence number sent in an earlier phase
  DUPLICATE: 11, // a sequence number already verified
  REORDERED: 12, // good, but lower than the highest sequence seen on the flow (also verified)
} as const;

export const BAD_SLOTS = 13;
export const BAD_NAMES: readonly string[] = (() => {
  const n = new Array<string>(BAD_SLOTS).fill('');
  for (const [k, v] of Object.entries(Bad)) n[v] = k.toLowerCase();
  return n;
})();

/** Duplicate detection window per flow, in sequence numbers (power of two). Sequence numbers
 * more than this far below the flow's highest are counted as reordered, not checked for
 * duplication: an exact bitmap over all sequence numbers would be unbounded for long runs. */
export const SEQ_WINDOW = 1024;
const WIN_WORDS = SEQ_WINDOW / 32;

export class Verifier {
  readonly plan: FlowPlan;
  readonly endpointCount: number;
  /** Per endpoint; index endpointCount holds what cannot be attributed (unknown port). */
  readonly returned: Float64Array;
  readonly verified: Float64Array;
  /** bad[e * BAD_SLOTS + reason], same endpoint indexing as returned. */
  readonly bad: Float64Array;
  /** Verified in the current phase (all endpoints): the settle loop waits for it. */
  phaseVerified = 0;

  // Per flow: sequence numbers handed out so far (the sender advances it), the first of the
  // current phase, the highest verified, and the duplicate window.
  readonly nextSeq: Float64Array;
  readonly phaseStartSeq: Float64Array;
  private readonly highest: Float64Array;
  private readonly window: Uint32Array;

  private readonly gi = new GeneveInfo();
  private readonly expBuf: Buffer;
  private readonly gwlbIp: number;
  private readonly applianceIp: number;
  private readonly eniHi: Uint32Array;
  private readonly eniLo: Uint32Array;

  constructor(plan: FlowPlan) {
    this.plan = plan;
    const ne = plan.endpoints.length;
    this.endpointCount = ne;
    this.returned = new Float64Array(ne + 1);
    this.verified = new Float64Array(ne + 1);
    this.bad = new Float64Array((ne + 1) * BAD_SLOTS);
    this.nextSeq = new Float64Array(plan.count);
    this.phaseStartSeq = new Float64Array(plan.count);
    this.highest = new Float64Array(plan.count).fill(-1);
    this.window = new Uint32Array(plan.count * WIN_WORDS);
    this.expBuf = Buffer.from(plan.expect.buffer, plan.expect.byteOffset, plan.expect.byteLength);
    this.gwlbIp = plan.gwlbIp >>> 0;
    this.applianceIp = plan.applianceIp >>> 0;
    this.eniHi = new Uint32Array(ne);
    this.eniLo = new Uint32Array(ne);
    for (let e = 0; e < ne; e++) {
      this.eniHi[e] = Number(plan.endpoints[e] >> 32n);
      this.eniLo[e] = Number(plan.endpoints[e] & 0xffffffffn);
    }
  }

  /** Start a new phase: sequence numbers from here on belong to it (call after the plan's
   * headers changed). */
  beginPhase(): void {
    this.phaseVerified = 0;
    this.phaseStartSeq.set(this.nextSeq);
  }

  /** Verify one returned datagram: UDP payload buf[off, off+len), outer source IP/port and
   * destination IP (IPv4 as uint32 or the int32 the native layer stores), truncated flag.
   * Updates the counters; returns 0 (verified), Bad.REORDERED (verified, out of order) or
   * another Bad.* reason. `data` must be a Buffer (Buffer.compare needs one; wrap the
   * receive area once at setup). */
  verify(data: Buffer, off: number, len: number, srcIp: number, srcPort: number, dstIp: number, truncated: boolean): number {
    const plan = this.plan;
    const f = plan.flowOfPort(srcPort);
    const e = f < 0 ? this.endpointCount : plan.ep[f];
    this.returned[e]++;
    const r = this.check(data, off, len, srcIp, f, dstIp, truncated);
    if (r === 0 || r === Bad.REORDERED) {
      this.verified[e]++;
      this.phaseVerified++;
    }
    if (r !== 0) this.bad[e * BAD_SLOTS + r]++;
    return r;
  }

  private check(data: Buffer, off: number, len: number, srcIp: number, f: number, dstIp: number, truncated: boolean): number {
    if (f < 0) return Bad.UNKNOWN_PORT;
    if (truncated) return Bad.TRUNCATED;
    if (srcIp >>> 0 !== this.applianceIp) return Bad.BAD_SOURCE;
    if (dstIp >>> 0 !== this.gwlbIp) return Bad.BAD_DESTINATION;
    const plan = this.plan;
    const hl = plan.hdrLen[f];
    if (len < hl) return Bad.TOO_SHORT;
    const x = plan.expOff[f];
    if (data.compare(this.expBuf, x, x + hl, off, off + hl) !== 0) {
      // Which kind of wrong: another endpoint's ENI ID is the interesting case (a cross-endpoint
      // mix-up in the appliance); anything else is just a wrong header.
      if (parseGeneve(data, off, len, this.gi) !== 0) return Bad.BAD_HEADER;
      const ep = plan.ep[f];
      if (this.gi.eniHi !== this.eniHi[ep] || this.gi.eniLo !== this.eniLo[ep]) return Bad.WRONG_ENDPOINT;
      return Bad.BAD_HEADER;
    }
    // Inner: byte-identical to the expected packet except the 6 sequence bytes, which are then
    // checked for consistency (seq and its compensation word) and for being a seq we sent.
    const el = plan.expLen[f];
    if (len !== el) return Bad.INNER_MISMATCH;
    const so = plan.expSeqOff[f];
    if (data.compare(this.expBuf, x + hl, x + so, off + hl, off + so) !== 0) return Bad.INNER_MISMATCH;
    const se = so + SEQ_FIELD_LEN;
    if (data.compare(this.expBuf, x + se, x + el, off + se, off + el) !== 0) return Bad.INNER_MISMATCH;
    const p = off + so;
    const seq = ((data[p] << 24) | (data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3]) >>> 0;
    if (((data[p + 4] << 8) | data[p + 5]) !== seqComp(seq)) return Bad.INNER_MISMATCH;
    if (seq >= this.nextSeq[f]) return Bad.UNKNOWN_SEQ;
    if (seq < this.phaseStartSeq[f]) return Bad.STALE_PHASE;
    return this.markSeq(f, seq);
  }

  /** Sliding-window duplicate/reorder bookkeeping (as in IPsec anti-replay). */
  private markSeq(f: number, seq: number): number {
    const w = this.window;
    const base = f * WIN_WORDS;
    const hi = this.highest[f];
    if (seq > hi) {
      // Clear the bits of the sequence numbers the window slides over, then take seq.
      if (seq - hi >= SEQ_WINDOW) {
        w.fill(0, base, base + WIN_WORDS);
      } else {
        for (let s = hi + 1; s < seq; s++) {
          const b = s & (SEQ_WINDOW - 1);
          w[base + (b >>> 5)] &= ~(1 << (b & 31));
        }
      }
      const b = seq & (SEQ_WINDOW - 1);
      w[base + (b >>> 5)] |= 1 << (b & 31);
      this.highest[f] = seq;
      return 0;
    }
    if (hi - seq >= SEQ_WINDOW) return Bad.REORDERED; // too old to tell a duplicate apart
    const b = seq & (SEQ_WINDOW - 1);
    const word = base + (b >>> 5);
    const bit = 1 << (b & 31);
    if ((w[word] & bit) !== 0) return Bad.DUPLICATE;
    w[word] |= bit;
    return Bad.REORDERED;
  }
}
