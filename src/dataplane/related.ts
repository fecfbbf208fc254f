// Packets that belong to a flow without carrying its 5-tuple: IP fragments and ICMP errors
// (docs/architecture.md, "Fragments" and "ICMP errors"). Used by the worker on both paths, only for
// packets whose flow key has no ports, so TCP/UDP packets that are not fragments never get here.
//
// From GWLB, besides the 3-tuple every fragment upserts (the last resort below):
//  - a first fragment of TCP/UDP records its datagram in the worker's DatagramTable and upserts
//    its flow's 5-tuple;
//  - a later fragment whose datagram is not known yet (it overtook its first fragment) upserts a
//    datagram entry in the flow table: the key of its address pair with protocol word flagged
//    DATAGRAM_KEY and the identification in the ports word, holding the header GWLB sent this
//    datagram with. Such entries are made only for reordered datagrams and expire like other flows.
// Back to GWLB:
//  - a first fragment records its datagram and is looked up by its 5-tuple;
//  - a later fragment is looked up by the 5-tuple of its datagram when the table knows it; when it
//    does not (it overtook its first fragment, or the first went through another worker), by its
//    datagram entry (exact when the appliance forwards the fragment unchanged: one-arm,
//    passthrough); failing that, by the address pair (3-tuple), which carries the header of the
//    last fragment GWLB sent between those addresses: the behaviour before datagrams were tracked
//    (NAT changes the addresses, so a NATed fragment that overtook its first one ends there).
//    Holding such fragments until their first one arrives was rejected: it needs a copy of each
//    packet, a timer, and would not help a first fragment that went through another worker;
//  - an ICMP error that matches no flow by its own addresses is looked up by the flow of the
//    packet it quotes (src/wire/icmp.ts); a malformed quote is dropped (icmp_quote_malformed).
//    An ICMP error is sent to the source of the packet that caused it, so its destination must be
//    the quoted packet's source; one that is not (crafted inside the appliance, or by whatever
//    routes through it) is dropped (icmp_quote_mismatch) rather than sent with the header of a
//    flow it merely names. NAT keeps this true: conntrack de-NATs an ICMP error as a whole, both
//    its destination and the quoted source (test/e2e/fragicmp.test.ts).
// No allocation per packet.

import type { FlowTable } from '../flow/table';
import { UPSERT_EVICTED, UPSERT_INSERTED } from '../flow/table';
import { DatagramTable } from '../flow/fragments';
import { FRAG_FIRST, FRAG_ID, FRAG_LATER, FRAG_NONE, FRAG_PORTS, FRAG_WORDS, fragmentOf } from '../wire/fragments';
import { icmpErrorFlowKey, ICMP_NOT_ERROR, ICMP_QUOTE_OK, KEY_ICMP4, KEY_ICMP6 } from '../wire/icmp';
import { KEY_WORDS } from '../wire/flowkey';
import { C } from './counters';

/** Flag in key word 1 (family << 8 | protocol) of a datagram entry: never set by a packet's key. */
export const DATAGRAM_KEY = 1 << 16;

/** lookupPortless result: an ICMP error whose quote is malformed (drop: icmp_quote_malformed). */
export const LOOKUP_BAD_QUOTE = -2;
/** lookupPortless result: an ICMP error not sent to the source of the packet it quotes (drop:
 * icmp_quote_mismatch). */
export const LOOKUP_QUOTE_MISMATCH = -3;

export class Related {
  readonly datagrams: DatagramTable;
  private readonly frag = new Uint32Array(FRAG_WORDS);
  private readonly qkey = new Uint32Array(KEY_WORDS);

  constructor(
    private readonly flows: FlowTable,
    private readonly counters: Float64Array,
    entries?: number,
  ) {
    this.datagrams = new DatagramTable(entries);
  }

  /** From GWLB, for a packet at buf[off, off+len) whose key (key[0..10], endpoint set) has no ports,
   * with its Geneve header at buf[hdrOff, +hdrLen): a first fragment of a TCP/UDP datagram records
   * the datagram and upserts the flow's 5-tuple; a later fragment of an unknown datagram upserts
   * its datagram entry. key is left as it was. */
  inbound(buf: Uint8Array, off: number, len: number, key: Uint32Array, hdrOff: number, hdrLen: number, src: number, dst: number, sport: number, now: number): void {
    const fp = key[1];
    const proto = fp & 0xff;
    if (proto !== 6 && proto !== 17) return;
    const f = fragmentOf(buf, off, len, this.frag);
    if (f === FRAG_FIRST) {
      const ports = this.frag[FRAG_PORTS];
      if (ports === 0) return;
      this.track(key, ports, now);
      key[10] = ports;
    } else if (f === FRAG_LATER) {
      if (this.datagrams.find(key, this.frag[FRAG_ID], now) >= 0) return;
      key[1] = fp | DATAGRAM_KEY;
      key[10] = this.frag[FRAG_ID];
    } else return;
    const u = this.flows.upsert(key, buf, hdrOff, hdrLen, src, dst, sport, now);
    if (u === UPSERT_INSERTED || u === UPSERT_EVICTED) this.counters[C.FLOW_INSERTS] += 1;
    if (u === UPSERT_EVICTED) this.counters[C.FLOW_EVICTIONS] += 1;
    key[1] = fp;
    key[10] = 0;
  }

  /** Back to GWLB, for a packet whose key has no ports: the flow's header length (copied in front of
   * buf[off], as FlowTable.lookupInto), -1 when no flow matches, LOOKUP_BAD_QUOTE or
   * LOOKUP_QUOTE_MISMATCH. key[10] may be rewritten (ports of the fragment's datagram); key[1..9]
   * are left as they are. */
  lookupPortless(buf: Uint8Array, off: number, len: number, key: Uint32Array, now: number): number {
    const flows = this.flows;
    const fp = key[1];
    const proto = fp & 0xff;
    if (proto === 6 || proto === 17) {
      const f = fragmentOf(buf, off, len, this.frag);
      if (f === FRAG_NONE) return flows.lookupInto(key, buf, off, now);
      let ports = -1;
      if (f === FRAG_FIRST) {
        ports = this.frag[FRAG_PORTS];
        if (ports !== 0) this.track(key, ports, now);
        else ports = -1;
      } else if (f === FRAG_LATER) {
        ports = this.datagrams.find(key, this.frag[FRAG_ID], now);
      }
      if (ports >= 0) {
        key[10] = ports;
        const h = flows.lookupInto(key, buf, off, now);
        if (h >= 0) {
          this.counters[C.FRAG_BY_DATAGRAM] += 1;
          return h;
        }
        key[10] = 0;
      } else if (f === FRAG_LATER) {
        key[1] = fp | DATAGRAM_KEY;
        key[10] = this.frag[FRAG_ID];
        const h = flows.lookupInto(key, buf, off, now);
        key[1] = fp;
        key[10] = 0;
        if (h >= 0) {
          this.counters[C.FRAG_BY_DATAGRAM] += 1;
          return h;
        }
      }
      const h = flows.lookupInto(key, buf, off, now);
      if (h >= 0) this.counters[C.FRAG_BY_PAIR] += 1;
      return h;
    }
    const h = flows.lookupInto(key, buf, off, now);
    if (h >= 0 || (fp !== KEY_ICMP4 && fp !== KEY_ICMP6)) return h;
    const q = icmpErrorFlowKey(buf, off, len, this.qkey);
    if (q === ICMP_NOT_ERROR) return -1;
    if (q !== ICMP_QUOTE_OK) return LOOKUP_BAD_QUOTE;
    // The quote's key is reversed: qkey[6..9] is the quoted source, key[6..9] the error's own
    // destination (IPv4: words 7-9 are 0 in both; the families agree, icmpErrorFlowKey checks).
    const qk = this.qkey;
    if (qk[6] !== key[6] || qk[7] !== key[7] || qk[8] !== key[8] || qk[9] !== key[9]) return LOOKUP_QUOTE_MISMATCH;
    qk[0] = key[0];
    const hq = flows.lookupInto(qk, buf, off, now);
    if (hq >= 0) this.counters[C.ICMP_BY_QUOTE] += 1;
    return hq;
  }

  private track(key: Uint32Array, ports: number, now: number): void {
    this.counters[C.FRAG_TRACKED] += 1;
    if (this.datagrams.record(key, this.frag[FRAG_ID], ports, now)) this.counters[C.FRAG_EVICTIONS] += 1;
  }
}
