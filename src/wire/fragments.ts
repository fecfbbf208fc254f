// What ties an IP fragment to its datagram (docs/architecture.md, "Fragments"): the datagram's
// identification (IPv4: the 16-bit IP ID; IPv6: the fragment header's 32-bit identification), and
// for the first fragment (offset 0, more fragments) the TCP/UDP ports it carries. Later fragments
// carry no ports; the caller maps (addresses, protocol, identification) to the ports of the first
// fragment (src/flow/fragments.ts). Hot path: no allocation, the result goes into the caller's array.

import { ipv4HeaderLen, ipv4TotalLen } from './ipv4';
import { walkIpv6Ext } from './ipv6ext';

export const FRAG_NONE = 0; // not a fragment (an IPv6 atomic fragment is not one either)
export const FRAG_FIRST = 1; // offset 0, more fragments follow
export const FRAG_LATER = 2; // nonzero offset

/** Indices of the result array. */
export const FRAG_ID = 0; // identification (uint32; IPv4: 16 bits)
export const FRAG_PORTS = 1; // first fragment of TCP/UDP with 4 bytes of transport header: srcPort << 16 | dstPort; else 0
export const FRAG_WORDS = 2;

const nhOut = new Int32Array(1);

/** Classify the IP packet at buf[off, off+len) and, for a fragment, write its identification and
 * (first fragment of TCP/UDP only) ports into out. Malformed input is FRAG_NONE (the flow key
 * parser rejects it anyway). The protocol is the one of the flow key: the IPv4 protocol field or
 * the IPv6 fragment header's next header; a first fragment whose fragment header is followed by
 * further extension headers yields no ports. Never throws. */
export function fragmentOf(buf: Uint8Array, off: number, len: number, out: Uint32Array): number {
  const avail = buf.length - off;
  if (!(off >= 0 && avail >= 0)) return FRAG_NONE;
  if (!(len <= avail)) len = avail;
  if (!(len >= 20)) return FRAG_NONE;
  const version = buf[off] >> 4;
  if (version === 4) {
    const ihl = ipv4HeaderLen(buf, off, len);
    if (ihl === 0) return FRAG_NONE;
    const total = ipv4TotalLen(buf, off);
    const fo = (buf[off + 6] << 8) | buf[off + 7];
    if ((fo & 0x3fff) === 0) return FRAG_NONE;
    out[FRAG_ID] = (buf[off + 4] << 8) | buf[off + 5];
    out[FRAG_PORTS] = 0;
    if ((fo & 0x1fff) !== 0) return FRAG_LATER;
    const proto = buf[off + 9];
    if ((proto === 6 || proto === 17) && ihl + 4 <= total) {
      const t = off + ihl;
      out[FRAG_PORTS] = ((buf[t] << 24) | (buf[t + 1] << 16) | (buf[t + 2] << 8) | buf[t + 3]) >>> 0;
    }
    return FRAG_FIRST;
  }
  if (version !== 6 || len < 40) return FRAG_NONE;
  const end = off + 40 + ((buf[off + 4] << 8) | buf[off + 5]);
  if (end > off + len) return FRAG_NONE;
  const p = walkIpv6Ext(buf, off + 40, buf[off + 6], end, nhOut);
  if (p < 0 || nhOut[0] !== 44) return FRAG_NONE;
  out[FRAG_ID] = ((buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]) >>> 0;
  out[FRAG_PORTS] = 0;
  if ((((buf[p + 2] << 8) | buf[p + 3]) & 0xfff8) !== 0) return FRAG_LATER;
  const nh = buf[p];
  const t = p + 8;
  if ((nh === 6 || nh === 17) && t + 4 <= end) {
    out[FRAG_PORTS] = ((buf[t] << 24) | (buf[t + 1] << 16) | (buf[t + 2] << 8) | buf[t + 3]) >>> 0;
  }
  return FRAG_FIRST;
}
