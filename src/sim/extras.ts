// The extra packets the emulator sends besides the good traffic: malformed datagrams from the
// catalogue in malformed.ts, and valid datagrams with random ENI IDs (an endpoint flood).
// Contract: everything is built once at setup (may allocate); next() copies one packet into a
// caller's batch slot and allocates nothing. Each kind uses GWLB source ports no good flow uses,
// so anything the appliance sends back for an extra packet is counted for its kind, never for a
// flow.

import { randomBytes } from 'node:crypto';
import { GENEVE_PORT, writeGeneveHeader } from '../wire/geneve';
import { endpointNames } from '../wire/eni';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../wire/outer';
import { buildInnerPacket } from '../testkit/build';
import type { FlowPlan } from './flows';
import { malformedEni, malformedIndex, malformedKind, RANDOM_ENI_KIND } from './malformed';
import type { ExtrasReport } from './reports';

/** Packets sent besides the good traffic: the malformed catalogue (src/sim/malformed.ts),
 * interleaved one after every `every` good packets, cycling over the chosen kinds and over each
 * kind's variants; and valid packets with random ENI IDs, sent first. Built once at setup as
 * complete outer IPv4 + UDP packets; the sender copies one into a batch slot (no allocation).
 *
 * Each kind has its own GWLB source port(s), none used by a good flow: anything the appliance
 * sends back for an extra packet is attributed to its kind (`returned`), never to a flow. */
export class Extras {
  /** Kind names; malformed kinds first, the random-ENI kind last when present. */
  readonly names: string[] = [];
  readonly reasons: string[] = [];
  readonly enis: string[] = [];
  readonly malformedKinds: number;
  readonly every: number;
  readonly sent: Float64Array;
  readonly returned: Float64Array;
  /** GWLB source port -> kind index, -1 for ports of good flows or unused. */
  readonly portKind = new Int16Array(65536).fill(-1);
  readonly maxPacket: number;
  /** Random-ENI packets still to send. */
  randomLeft: number;
  private readonly tmpl: Buffer;
  private readonly vOff: Int32Array;
  private readonly vLen: Int32Array;
  private readonly kFirst: Int32Array;
  private readonly kCount: Int32Array;
  private readonly kNext: Int32Array;
  private nextKind = 0;
  // Random ENI IDs: one template, the ENI (8 bytes) and the UDP source port patched per packet.
  private readonly rEni: Uint32Array;
  private rIdx = 0;
  private readonly rOff: number;
  private readonly rLen: number;
  private readonly rEniAt: number;
  private readonly rPorts: Int32Array;

  constructor(plan: FlowPlan, malformed: string[], every: number, randomEnis: number) {
    const kinds = malformed.map((name) => malformedKind(name));
    this.malformedKinds = kinds.length;
    this.every = every;
    this.randomLeft = randomEnis;
    const nk = kinds.length + (randomEnis > 0 ? 1 : 0);
    this.sent = new Float64Array(nk);
    this.returned = new Float64Array(nk);
    // Ports no good flow uses, lowest first (flows use firstPort .. firstPort + count - 1).
    const free: number[] = [];
    for (let p = 1024; p < 65536 && free.length < kinds.length + 256; p++) if (plan.flowOfPort(p) < 0) free.push(p);
    if (free.length < kinds.length + (randomEnis > 0 ? 1 : 0)) throw new RangeError('no free GWLB ports left for the extra packets');
    const attachment = plan.attachments[0];
    const packets: Uint8Array[] = [];
    this.kFirst = new Int32Array(nk);
    this.kCount = new Int32Array(nk);
    this.kNext = new Int32Array(nk);
    kinds.forEach((k, i) => {
      const eni = malformedEni(malformedIndex(k.name), plan.endpoints);
      this.names.push(k.name);
      this.reasons.push(k.reason);
      this.enis.push(endpointNames(eni).hex);
      const port = free[i];
      this.portKind[port] = i;
      this.kFirst[i] = packets.length;
      for (const payload of k.build(eni, attachment)) packets.push(outer(plan, port, payload));
      this.kCount[i] = packets.length - this.kFirst[i];
    });
    // Random ENI IDs: fresh 64-bit values, none equal to a good or malformed one, no repeats.
    const taken = new Set<string>([...plan.endpoints, ...kinds.map((k) => malformedEni(malformedIndex(k.name), plan.endpoints))].map(String));
    this.rEni = new Uint32Array(2 * randomEnis);
    const raw = randomBytes(8 * randomEnis);
    for (let i = 0; i < randomEnis; i++) {
      let v = raw.readBigUInt64BE(8 * i);
      while (taken.has(String(v))) v = randomBytes(8).readBigUInt64BE(0);
      taken.add(String(v));
      this.rEni[2 * i] = Number(v >> 32n);
      this.rEni[2 * i + 1] = Number(v & 0xffffffffn);
    }
    const rk = kinds.length;
    this.rPorts = new Int32Array(free.slice(kinds.length, kinds.length + 256));
    if (randomEnis > 0) {
      this.names.push(RANDOM_ENI_KIND);
      this.reasons.push('');
      this.enis.push('');
      for (const p of this.rPorts) this.portKind[p] = rk;
      const inner = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.253', dst: '198.51.100.253', srcPort: 4000, dstPort: 4001, payload: new Uint8Array(16).fill(0xab) });
      const h = new Uint8Array(64);
      const hl = writeGeneveHeader(h, 0, { protocol: 0x0800, eni: 0n, attachment, cookie: 0x5eed0001 });
      const payload = new Uint8Array(hl + inner.length);
      payload.set(h.subarray(0, hl));
      payload.set(inner, hl);
      this.kFirst[rk] = packets.length;
      this.kCount[rk] = 1;
      packets.push(outer(plan, this.rPorts[0], payload));
    }
    // Lay the packets out in one buffer.
    this.vOff = new Int32Array(packets.length);
    this.vLen = new Int32Array(packets.length);
    let total = 0;
    let max = 0;
    for (let v = 0; v < packets.length; v++) {
      this.vOff[v] = total;
      this.vLen[v] = packets[v].length;
      total += (packets[v].length + 7) & ~7;
      if (packets[v].length > max) max = packets[v].length;
    }
    this.tmpl = Buffer.alloc(total);
    for (let v = 0; v < packets.length; v++) this.tmpl.set(packets[v], this.vOff[v]);
    this.maxPacket = max;
    this.rOff = randomEnis > 0 ? this.vOff[this.kFirst[rk]] : 0;
    this.rLen = randomEnis > 0 ? this.vLen[this.kFirst[rk]] : 0;
    // The ENI option is the first option: its data starts 8 (base) + 4 (option header) bytes in.
    this.rEniAt = OUTER_HEADER_LEN + 12;
  }

  /** Write the next extra packet due into buf at off. Returns its kind and sets lastLen; -1 when
   * none is due. `goodSince` is the number of good packets since the last malformed one. */
  next(buf: Buffer, off: number, goodSince: number): number {
    if (this.randomLeft > 0) {
      const k = this.malformedKinds;
      this.tmpl.copy(buf, off, this.rOff, this.rOff + this.rLen);
      const i = this.rIdx++;
      this.randomLeft--;
      const hi = this.rEni[2 * i];
      const lo = this.rEni[2 * i + 1];
      const e = off + this.rEniAt;
      buf[e] = hi >>> 24;
      buf[e + 1] = (hi >>> 16) & 0xff;
      buf[e + 2] = (hi >>> 8) & 0xff;
      buf[e + 3] = hi & 0xff;
      buf[e + 4] = lo >>> 24;
      buf[e + 5] = (lo >>> 16) & 0xff;
      buf[e + 6] = (lo >>> 8) & 0xff;
      buf[e + 7] = lo & 0xff;
      // Spread over several source ports, as many GWLB flows would (and over the appliance's
      // SO_REUSEPORT sockets). The UDP checksum is 0 and the IPv4 checksum does not cover ports.
      const port = this.rPorts[i % this.rPorts.length];
      buf[off + 20] = port >>> 8;
      buf[off + 21] = port & 0xff;
      this.lastLen = this.rLen;
      return k;
    }
    if (this.malformedKinds === 0 || goodSince < this.every) return -1;
    const k = this.nextKind;
    this.nextKind = k + 1 === this.malformedKinds ? 0 : k + 1;
    const v = this.kFirst[k] + this.kNext[k];
    this.kNext[k] = this.kNext[k] + 1 === this.kCount[k] ? 0 : this.kNext[k] + 1;
    this.tmpl.copy(buf, off, this.vOff[v], this.vOff[v] + this.vLen[v]);
    this.lastLen = this.vLen[v];
    return k;
  }

  lastLen = 0;

  report(): ExtrasReport {
    const r: ExtrasReport = { every: this.every, sent: {}, returned: {}, reasons: {}, enis: {} };
    this.names.forEach((n, k) => {
      r.sent[n] = this.sent[k];
      r.returned[n] = this.returned[k];
      if (k < this.malformedKinds) {
        r.reasons[n] = this.reasons[k];
        r.enis[n] = this.enis[k];
      }
    });
    return r;
  }
}

/** A complete outer IPv4 + UDP packet from GWLB (port) to the appliance around a UDP payload. */
function outer(plan: FlowPlan, port: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(OUTER_HEADER_LEN + payload.length);
  writeOuterIpUdp(p, 0, plan.gwlbIp, plan.applianceIp, port, GENEVE_PORT, payload.length);
  p.set(payload, OUTER_HEADER_LEN);
  return p;
}
