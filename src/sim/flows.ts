// The emulator's flow plan: which flows exist, their addresses, GWLB ports, cookies, and the
// prebuilt bytes of every flow's outbound packet and of the packet expected back.
//
// Everything is struct-of-arrays over a flow index 0..count-1, so the sender and the verifier
// work on typed arrays only. Built once per run (setup, may allocate); a new phase rewrites the
// Geneve headers in place (new cookies).

import { randomBytes } from 'node:crypto';
import { buildInnerPacket, decrementTtl } from '../testkit/build';
import { writeGeneveHeader, GENEVE_PORT } from '../wire/geneve';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../wire/outer';
import { ip4FromString } from '../io/native';

export type SimProto = 'tcp' | 'udp' | 'icmp';
export type SimFamily = 4 | 6;

/** Payload layout of every emulator packet (offsets inside the L4 payload):
 *  0..3 MAGIC, 4..7 flow index, 8..11 sequence number, 12..13 checksum compensation word,
 *  14..15 zero, then a fixed per-flow filler pattern.
 *
 * The compensation word makes the three 16-bit words (seq high, seq low, comp) always add up
 * to 0xffff in one's complement arithmetic, so the TCP/UDP/ICMP checksum of the template (built
 * with seq 0) stays correct for every seq: patching a packet is two stores, no checksum work. */
export const PAYLOAD_MAGIC = 0x474c4245; // 'GLBE'
export const PAYLOAD_MIN = 16;
export const PAYLOAD_SEQ_OFF = 8; // seq (4) + comp (2) live at payload+8 .. payload+14
export const SEQ_FIELD_LEN = 6;

/** GWLB's inner MTU (docs/protocol.md section 1). */
export const INNER_MAX = 8500;

/** Compensation word for seq (see PAYLOAD_* above). */
export function seqComp(seq: number): number {
  let s = (seq >>> 16) + (seq & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export interface FlowPlanOptions {
  gwlbIp: string;
  applianceIp: string;
  endpoints: bigint[];
  flowsPerKind: number;
  families: SimFamily[];
  protos: SimProto[];
  /** Inner IP packet length in bytes; raised to the smallest size a kind can carry. */
  innerSize: number;
  /** How many times the appliance decrements TTL / hop limit (1 = kernel forwarding). */
  ttlDecrement: number;
  /** First GWLB UDP source port; flow f uses firstPort + f. */
  firstPort?: number;
  /** Attachment IDs per endpoint (default random). */
  attachments?: bigint[];
  /** Shift of the inner address pairs and source ports (default 0): plans with different
   * offsets use different 5-tuples, so successive runs can churn flows. */
  flowOffset?: number;
  /** Give every endpoint the same inner packets (addresses, ports, ICMP ids, TCP sequence
   * numbers): customers behind different endpoints with overlapping CIDRs. Flows stay distinct by
   * endpoint and GWLB port; the payload still carries the (global) flow index. Default false. */
  sameInner?: boolean;
}

const L4_PROTO: Record<SimProto, [number, number]> = { tcp: [6, 6], udp: [17, 17], icmp: [1, 58] };
const L4_HDR: Record<SimProto, number> = { tcp: 20, udp: 8, icmp: 8 };

/** Random uint32 values (setup only). */
function randomU32s(n: number): Uint32Array {
  const b = randomBytes(n * 4);
  return new Uint32Array(b.buffer, b.byteOffset, n).slice();
}

function randomU64(): bigint {
  return randomBytes(8).readBigUInt64BE(0);
}

function ip6Group(v: number): string {
  return v.toString(16);
}

/** IPv4 inner addresses for pair index c (unique (src, dst) pairs up to 254 * 508 flows):
 * sources from 192.0.2.0/24, destinations from 198.51.100.0/24 then 203.0.113.0/24.
 * Unique address pairs (not only 5-tuples) matter: the appliance keys ICMP flows on the
 * addresses alone, so two ICMP flows sharing a pair would share one stored header. */
export const IPV4_PAIR_LIMIT = 254 * 508;
function ipv4Pair(c: number): [string, string] {
  const src = `192.0.2.${1 + (c % 254)}`;
  const q = Math.floor(c / 254);
  const dst = q < 254 ? `198.51.100.${1 + q}` : `203.0.113.${1 + q - 254}`;
  return [src, dst];
}

/** IPv6 inner addresses: 2001:db8:<endpoint+1>::<k+1> -> 2001:db8:ffff::<k+1>, k counting the
 * endpoint's IPv6 flows; the source differs per endpoint, so pairs are unique across endpoints. */
function ipv6Pair(ep: number, k: number): [string, string] {
  const v = k + 1;
  const host = `${ip6Group(Math.floor(v / 65536))}:${ip6Group(v % 65536)}`;
  return [`2001:db8:${ip6Group(ep + 1)}::${host}`, `2001:db8:ffff::${host}`];
}

export class FlowPlan {
  readonly count: number;
  readonly endpoints: bigint[];
  readonly attachments: bigint[];
  readonly gwlbIp: number;
  readonly applianceIp: number;

  // Per flow.
  readonly ep: Int32Array; // endpoint index
  readonly family: Int32Array; // 4 or 6
  readonly proto: Int32Array; // IP protocol number of the inner packet
  readonly port: Int32Array; // GWLB UDP source port
  readonly cookie: Uint32Array; // cookie of the current phase
  readonly src: string[]; // inner addresses (reporting/debugging; setup only)
  readonly dst: string[];

  // Outbound packets: full IPv4 (outer) + UDP + Geneve + inner, seq 0.
  readonly tmpl: Uint8Array;
  readonly tmplOff: Int32Array;
  readonly tmplLen: Int32Array;
  /** Offset of the seq field inside the outbound packet (relative to tmplOff). */
  readonly tmplSeqOff: Int32Array;
  /** Geneve header length (same in both templates). */
  readonly hdrLen: Int32Array;

  // Expected returned UDP payloads: the same Geneve header + inner after ttlDecrement hops.
  readonly expect: Uint8Array;
  readonly expOff: Int32Array;
  readonly expLen: Int32Array;
  /** Offset of the seq field inside the returned UDP payload (relative to expOff). */
  readonly expSeqOff: Int32Array;
  /** Largest outbound packet, bytes. */
  readonly maxPacket: number;

  private readonly portToFlowArr: Int32Array;

  constructor(o: FlowPlanOptions) {
    if (o.endpoints.length === 0) throw new RangeError('at least one endpoint is needed');
    if (new Set(o.endpoints.map(String)).size !== o.endpoints.length) throw new RangeError('endpoints must be distinct');
    if (!(Number.isInteger(o.flowsPerKind) && o.flowsPerKind >= 1)) throw new RangeError('flowsPerKind must be an integer >= 1');
    if (o.families.length === 0 || o.protos.length === 0) throw new RangeError('families and protos must not be empty');
    if (!(Number.isInteger(o.ttlDecrement) && o.ttlDecrement >= 0 && o.ttlDecrement < 64)) throw new RangeError('ttlDecrement must be 0..63');
    if (!(Number.isInteger(o.innerSize) && o.innerSize >= 0 && o.innerSize <= INNER_MAX)) {
      throw new RangeError(`innerSize must be 0..${INNER_MAX}`);
    }
    const families = [...new Set(o.families)];
    const protos = [...new Set(o.protos)];
    const firstPort = o.firstPort ?? 10000;
    const count = o.endpoints.length * families.length * protos.length * o.flowsPerKind;
    if (firstPort < 1024 || firstPort + count - 1 > 65535) {
      throw new RangeError(`${count} flows do not fit GWLB ports ${firstPort}..65535`);
    }
    const v4Flows = families.includes(4) ? count / families.length : 0;
    if (v4Flows > IPV4_PAIR_LIMIT) throw new RangeError(`at most ${IPV4_PAIR_LIMIT} IPv4 flows`);
    const shift = o.flowOffset ?? 0;
    if (!(Number.isInteger(shift) && shift >= 0)) throw new RangeError('flowOffset must be an integer >= 0');

    this.count = count;
    this.endpoints = o.endpoints.slice();
    this.attachments = o.attachments ? o.attachments.slice() : o.endpoints.map(() => randomU64());
    if (this.attachments.length !== o.endpoints.length) throw new RangeError('one attachment per endpoint');
    this.gwlbIp = ip4FromString(o.gwlbIp);
    this.applianceIp = ip4FromString(o.applianceIp);
    this.ep = new Int32Array(count);
    this.family = new Int32Array(count);
    this.proto = new Int32Array(count);
    this.port = new Int32Array(count);
    this.cookie = randomU32s(count);
    this.src = new Array<string>(count);
    this.dst = new Array<string>(count);
    this.tmplOff = new Int32Array(count);
    this.tmplLen = new Int32Array(count);
    this.tmplSeqOff = new Int32Array(count);
    this.hdrLen = new Int32Array(count);
    this.expOff = new Int32Array(count);
    this.expLen = new Int32Array(count);
    this.expSeqOff = new Int32Array(count);
    this.portToFlowArr = new Int32Array(65536).fill(-1);

    // First pass: build every flow's inner packet, then lay them out in two flat buffers.
    const inners: Uint8Array[] = new Array<Uint8Array>(count);
    const expInners: Uint8Array[] = new Array<Uint8Array>(count);
    const payOff: number[] = new Array<number>(count);
    let f = 0;
    // Consecutive pair indices from the offset, wrapping: unique pairs as long as the plan has
    // at most IPV4_PAIR_LIMIT IPv4 flows (checked above).
    let v4pair = shift % IPV4_PAIR_LIMIT;
    for (let e = 0; e < o.endpoints.length; e++) {
      // f - kBase numbers the flow's inner packet: globally, or (sameInner) within its endpoint.
      const kBase = o.sameInner === true ? f : 0;
      if (o.sameInner === true) v4pair = shift % IPV4_PAIR_LIMIT;
      // IPv6 hosts: 2^32 per endpoint, far more than a plan's flows; wrap below 2^31.
      let v6k = shift % 0x7fff0000;
      for (const fam of families) {
        for (const pr of protos) {
          for (let n = 0; n < o.flowsPerKind; n++, f++) {
            const [src, dst] = fam === 4 ? ipv4Pair(v4pair++ % IPV4_PAIR_LIMIT) : ipv6Pair(o.sameInner === true ? 0 : e, v6k++);
            const ipProto = L4_PROTO[pr][fam === 4 ? 0 : 1];
            const ipHdr = fam === 4 ? 20 : 40;
            const payLen = Math.max(PAYLOAD_MIN, o.innerSize - ipHdr - L4_HDR[pr]);
            const payload = new Uint8Array(payLen);
            const dv = new DataView(payload.buffer);
            dv.setUint32(0, PAYLOAD_MAGIC);
            dv.setUint32(4, f);
            dv.setUint32(PAYLOAD_SEQ_OFF, 0);
            dv.setUint16(PAYLOAD_SEQ_OFF + 4, seqComp(0));
            for (let i = PAYLOAD_MIN; i < payLen; i++) payload[i] = (i * 7 + f) & 0xff;
            const inner = buildInnerPacket({
              family: fam,
              proto: ipProto,
              src,
              dst,
              srcPort: 20000 + ((f - kBase + shift) % 40000),
              dstPort: pr === 'tcp' ? 443 : 53,
              tcpFlags: 0x18, // PSH|ACK: a mid-connection segment
              tcpSeq: ((f - kBase) * 7919) >>> 0,
              icmpId: (f - kBase + shift) & 0xffff,
              icmpSeq: 1,
              ttl: 64,
              payload,
            });
            // The payload is the tail of the inner packet (no trailer in what we build).
            payOff[f] = inner.length - payLen;
            const po = payOff[f];
            if (((inner[po] << 24) | (inner[po + 1] << 16) | (inner[po + 2] << 8) | inner[po + 3]) >>> 0 !== PAYLOAD_MAGIC) {
              throw new Error('buildInnerPacket: payload is not the tail of the packet');
            }
            let exp = inner;
            for (let k = 0; k < o.ttlDecrement; k++) exp = decrementTtl(exp);
            inners[f] = inner;
            expInners[f] = exp;
            this.ep[f] = e;
            this.family[f] = fam;
            this.proto[f] = ipProto;
            this.port[f] = firstPort + f;
            this.portToFlowArr[firstPort + f] = f;
            this.src[f] = src;
            this.dst[f] = dst;
          }
        }
      }
    }

    // Geneve headers of GWLB are 8 + 3 options = 40 bytes; measure it rather than assume.
    const scratch = new Uint8Array(512);
    const hl = writeGeneveHeader(scratch, 0, { protocol: 0x0800, eni: 0n, attachment: 0n, cookie: 0 });
    let tmplTotal = 0;
    let expTotal = 0;
    let maxPacket = 0;
    for (f = 0; f < count; f++) {
      const tl = OUTER_HEADER_LEN + hl + inners[f].length;
      this.tmplOff[f] = tmplTotal;
      this.tmplLen[f] = tl;
      this.tmplSeqOff[f] = OUTER_HEADER_LEN + hl + payOff[f] + PAYLOAD_SEQ_OFF;
      this.hdrLen[f] = hl;
      tmplTotal += (tl + 7) & ~7;
      this.expOff[f] = expTotal;
      this.expLen[f] = hl + expInners[f].length;
      this.expSeqOff[f] = hl + payOff[f] + PAYLOAD_SEQ_OFF;
      expTotal += (this.expLen[f] + 7) & ~7;
      if (tl > maxPacket) maxPacket = tl;
    }
    this.maxPacket = maxPacket;
    this.tmpl = new Uint8Array(tmplTotal);
    this.expect = new Uint8Array(expTotal);
    for (f = 0; f < count; f++) {
      const t = this.tmplOff[f];
      writeOuterIpUdp(this.tmpl, t, this.gwlbIp, this.applianceIp, this.port[f], GENEVE_PORT, hl + inners[f].length);
      this.tmpl.set(inners[f], t + OUTER_HEADER_LEN + hl);
      this.expect.set(expInners[f], this.expOff[f] + hl);
      this.writeHeader(f);
    }
  }

  /** Flow index of a GWLB source port, or -1. */
  flowOfPort(port: number): number {
    return port >= 0 && port < 65536 ? this.portToFlowArr[port] : -1;
  }

  /** New cookies for every flow (GWLB reusing each 5-tuple as a new flow), headers rewritten. */
  newCookies(): void {
    const fresh = randomU32s(this.count);
    for (let f = 0; f < this.count; f++) {
      // A new flow gets a different cookie; redraw the rare collision with the old one.
      let c = fresh[f];
      while (c === this.cookie[f]) c = randomU32s(1)[0];
      this.cookie[f] = c;
      this.writeHeader(f);
    }
  }

  private writeHeader(f: number): void {
    const spec = {
      protocol: this.family[f] === 4 ? 0x0800 : 0x86dd,
      eni: this.endpoints[this.ep[f]],
      attachment: this.attachments[this.ep[f]],
      cookie: this.cookie[f],
    };
    const a = writeGeneveHeader(this.tmpl, this.tmplOff[f] + OUTER_HEADER_LEN, spec);
    const b = writeGeneveHeader(this.expect, this.expOff[f], spec);
    if (a !== this.hdrLen[f] || b !== this.hdrLen[f]) throw new Error('Geneve header length changed');
  }

  /** The UDP payload the appliance should return for flow f, sequence seq (a copy; for tests
   * and for the reflector-less unit checks). */
  expectedReturn(f: number, seq: number): Uint8Array {
    const out = this.expect.slice(this.expOff[f], this.expOff[f] + this.expLen[f]);
    writeSeq(out, this.expSeqOff[f], seq);
    return out;
  }

  /** The outbound IPv4 packet for flow f, sequence seq (a copy; tests). */
  outboundPacket(f: number, seq: number): Uint8Array {
    const out = this.tmpl.slice(this.tmplOff[f], this.tmplOff[f] + this.tmplLen[f]);
    writeSeq(out, this.tmplSeqOff[f], seq);
    return out;
  }
}

/** Store seq and its compensation word at buf[off, off+6). Hot path: no allocation. */
export function writeSeq(buf: Uint8Array, off: number, seq: number): void {
  buf[off] = seq >>> 24;
  buf[off + 1] = (seq >>> 16) & 0xff;
  buf[off + 2] = (seq >>> 8) & 0xff;
  buf[off + 3] = seq & 0xff;
  const c = seqComp(seq);
  buf[off + 4] = c >>> 8;
  buf[off + 5] = c & 0xff;
}
