// The lab's GWLB as a forwarder (docs/lab.md). In the lab's "gwlb" namespace, the kernel routes
// every packet between the client and server networks into a TUN device; this reads it, puts it in
// Geneve exactly as GWLB does (one flow = one UDP source port and one cookie, the same in both
// directions; ENI ID and attachment ID of the one endpoint) and sends it to the appliance on UDP
// 6081. What the appliance sends back is checked (its Geneve header byte-identical to the one its
// flow was sent with, from the flow's source port, from the appliance's address), decapsulated and
// written to the TUN device, and the kernel delivers it to the server or the client.
//
// Per-packet code allocates nothing: batches of fixed slots, counters in a Float64Array.

import { GENEVE_PORT } from '../wire/geneve';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../wire/outer';
import { flowKeyFromIp, KEY_WORDS } from '../wire/flowkey';
import type { NativeAddon } from '../io/native';
import { LAB_GENEVE_LEN, LabFlows } from './flows';
import { RX_SLOT } from '../wire/sizes';

/** Counter names, in the order of their cells. */
export const GWLB_COUNTERS = [
  'fromNetwork', // packets read from the TUN device (client or server traffic)
  'toAppliance', // Geneve packets sent to the appliance
  'fromAppliance', // UDP datagrams received from the appliance
  'delivered', // inner packets written back to the networks
  'relatedByCookie', // of which tied to their flow by the cookie only (ICMP errors)
  'headerMismatch', // a known flow's packet came back with another Geneve header
  'portMismatch', // ... from another UDP source port than the flow's
  'unknownFlow', // came back on no flow GWLB ever sent
  'malformed', // not Geneve + an IP packet; or from another address than the appliance
  'unparsable', // read from the TUN device but no IPv4/IPv6 flow key (never sent)
  'sendErrors', // refused by the kernel or send queue full for too long
  'writeErrors', // TUN write failed
] as const;
export type GwlbCounter = (typeof GWLB_COUNTERS)[number];
const C = Object.fromEntries(GWLB_COUNTERS.map((n, i) => [n, i])) as Record<GwlbCounter, number>;

const BATCH = 64;
/** Receive/send slot: outer headers + Geneve + an 8500-byte inner packet fit with room to spare. */
const SLOT = RX_SLOT;
const HEADROOM = OUTER_HEADER_LEN + LAB_GENEVE_LEN;
const SEND_TRIES = 200;

export interface LabGwlbOptions {
  tunFd: number;
  udpFd: number;
  rawFd: number;
  gwlbIp: number;
  applianceIp: number;
  flows: LabFlows;
}

export class LabGwlb {
  readonly counters = new Float64Array(GWLB_COUNTERS.length);
  private readonly txBuf = new Uint8Array(SLOT * BATCH);
  private readonly txLens = new Int32Array(BATCH);
  private readonly txMeta = new Int32Array(BATCH * 3);
  private readonly status = new Int32Array(BATCH);
  private readonly rxBuf = new Uint8Array(SLOT * BATCH);
  private readonly rxMeta = new Int32Array(BATCH * 5);
  private readonly wrMeta = new Int32Array(BATCH * 3);
  private readonly key = new Uint32Array(KEY_WORDS);
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly n: NativeAddon, private readonly o: LabGwlbOptions) {}

  /** Client/server packets from the TUN device to the appliance, one batch. Returns the number read. */
  fromNetwork(now: number): number {
    const o = this.o;
    const k = this.n.tunRead(o.tunFd, this.txBuf, SLOT, HEADROOM, 0, BATCH, this.txLens);
    if (k <= 0) return 0;
    const c = this.counters;
    c[C.fromNetwork] += k;
    const buf = this.txBuf;
    const flows = o.flows;
    const meta = this.txMeta;
    let out = 0;
    for (let i = 0; i < k; i++) {
      const slot = i * SLOT;
      const len = this.txLens[i];
      if (!flowKeyFromIp(buf, slot + HEADROOM, len, this.key)) {
        c[C.unparsable]++;
        continue;
      }
      const e = flows.findOrCreate(this.key, now);
      const h = e * LAB_GENEVE_LEN;
      const g = slot + OUTER_HEADER_LEN;
      for (let j = 0; j < LAB_GENEVE_LEN; j++) buf[g + j] = flows.hdr[h + j];
      writeOuterIpUdp(buf, slot, o.gwlbIp, o.applianceIp, flows.port[e], GENEVE_PORT, LAB_GENEVE_LEN + len);
      meta[out * 3] = slot;
      meta[out * 3 + 1] = HEADROOM + len;
      meta[out * 3 + 2] = o.applianceIp;
      out++;
    }
    this.send(out);
    return k;
  }

  private send(count: number): void {
    const c = this.counters;
    let tries = 0;
    while (count > 0) {
      const done = this.n.rawSend(this.o.rawFd, this.txBuf, this.txMeta, count, this.status);
      for (let i = 0; i < done; i++) {
        if (this.status[i] === 0) c[C.toAppliance]++;
        else c[C.sendErrors]++;
      }
      if (done >= count) return;
      // Send queue full: wait a little, retry the rest (bounded).
      if (++tries > SEND_TRIES) {
        c[C.sendErrors] += count - done;
        return;
      }
      this.txMeta.copyWithin(0, done * 3, count * 3);
      count -= done;
      Atomics.wait(this.sleepCell, 0, 0, 0.05);
    }
  }

  /** Geneve from the appliance, checked and delivered to the networks, one batch. Returns the
   * number received. */
  fromAppliance(now: number): number {
    const o = this.o;
    const k = this.n.udpRecv(o.udpFd, this.rxBuf, SLOT, BATCH, this.rxMeta);
    if (k <= 0) return 0;
    const c = this.counters;
    c[C.fromAppliance] += k;
    const buf = this.rxBuf;
    const rm = this.rxMeta;
    const wm = this.wrMeta;
    const flows = o.flows;
    let out = 0;
    for (let i = 0; i < k; i++) {
      const b = i * 5;
      const len = rm[b];
      const slot = i * SLOT;
      if ((rm[b + 4] & 1) !== 0 || rm[b + 1] >>> 0 !== o.applianceIp >>> 0 || len < LAB_GENEVE_LEN + 20) {
        c[C.malformed]++;
        continue;
      }
      const inner = slot + LAB_GENEVE_LEN;
      const innerLen = len - LAB_GENEVE_LEN;
      let e = flowKeyFromIp(buf, inner, innerLen, this.key) ? flows.find(this.key, now) : -1;
      if (e >= 0) {
        if (!flows.sameHeader(e, buf, slot)) {
          c[C.headerMismatch]++;
          continue;
        }
      } else {
        e = flows.byCookie(buf, slot);
        if (e < 0) {
          c[C.unknownFlow]++;
          continue;
        }
        c[C.relatedByCookie]++;
      }
      if (rm[b + 2] !== flows.port[e]) {
        c[C.portMismatch]++;
        continue;
      }
      wm[out * 3] = o.tunFd;
      wm[out * 3 + 1] = inner;
      wm[out * 3 + 2] = innerLen;
      out++;
    }
    if (out > 0) {
      this.n.tunWrite(buf, wm, out);
      for (let i = 0; i < out; i++) {
        if (wm[i * 3 + 2] < 0) c[C.writeErrors]++;
        else c[C.delivered]++;
      }
    }
    return k;
  }

  /** The counters by name (allocates: for reports, not per packet). */
  snapshot(): Record<GwlbCounter, number> & { flows: number; flowsCreated: number; flowsEvicted: number } {
    const r = {} as Record<GwlbCounter, number>;
    GWLB_COUNTERS.forEach((name, i) => (r[name] = this.counters[i]));
    return { ...r, flows: this.o.flows.live, flowsCreated: this.o.flows.created, flowsEvicted: this.o.flows.evicted };
  }
}
