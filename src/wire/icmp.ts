// ICMP errors and the flow they are about (docs/architecture.md, "ICMP errors").
//
// An ICMP error (IPv4 types 3 destination unreachable, 11 time exceeded, 12 parameter problem;
// IPv6 types 1 destination unreachable, 2 packet too big, 3 time exceeded, 4 parameter problem)
// travels from a router or the appliance to the sender of the packet it complains about, and quotes
// the start of that packet (IPv4: its header and at least 8 bytes; IPv6: as much as fits in 1280
// bytes). Its own addresses match no flow; the quoted packet's do. So the flow key is read from the
// quote, reversed (the quote travelled from the client, the error travels to it), in the layout of
// src/wire/flowkey.ts. The quote is validated like any packet, except that it may be cut short:
// its header must be whole and its length fields consistent, and for TCP/UDP the 4 bytes of ports
// must be present; its own total/payload length may exceed what was quoted. A quoted ICMP error is
// keyed like any ICMP packet (3-tuple): nothing is ever parsed recursively. Hot path: no allocation.

import { ipv4HeaderLen, ipv4TotalLen } from './ipv4';
import { walkIpv6Ext } from './ipv6ext';

export const ICMP_NOT_ERROR = 0; // not an ICMP error (or not parseable as one): key untouched
export const ICMP_QUOTE_OK = 1; // key[1..10] = the key of the quoted packet's flow, reversed
export const ICMP_QUOTE_BAD = 2; // an ICMP error whose quote is malformed (key[1..10] may be partly written)

/** key[1] of ICMPv4 and ICMPv6 packets (family << 8 | protocol): only these need icmpErrorFlowKey. */
export const KEY_ICMP4 = (4 << 8) | 1;
export const KEY_ICMP6 = (6 << 8) | 58;

const nhOut = new Int32Array(1);

/** If buf[off, off+len) is an ICMPv4 error (types 3, 11, 12) or ICMPv6 error (types 1-4), not a
 * fragment, write into key[1..10] the flow key of the packet it quotes, reversed; key[0] is the
 * caller's. Never throws. */
export function icmpErrorFlowKey(buf: Uint8Array, off: number, len: number, key: Uint32Array): number {
  const avail = buf.length - off;
  if (!(off >= 0 && avail >= 0)) return ICMP_NOT_ERROR;
  if (!(len <= avail)) len = avail;
  if (!(len >= 20)) return ICMP_NOT_ERROR;
  const version = buf[off] >> 4;
  if (version === 4) {
    const ihl = ipv4HeaderLen(buf, off, len);
    if (ihl === 0) return ICMP_NOT_ERROR;
    const total = ipv4TotalLen(buf, off);
    if (buf[off + 9] !== 1 || (((buf[off + 6] << 8) | buf[off + 7]) & 0x3fff) !== 0) return ICMP_NOT_ERROR;
    const t = off + ihl;
    if (t + 8 > off + total) return ICMP_NOT_ERROR;
    const type = buf[t];
    if (type !== 3 && type !== 11 && type !== 12) return ICMP_NOT_ERROR;
    return quote4(buf, t + 8, off + total, key) ? ICMP_QUOTE_OK : ICMP_QUOTE_BAD;
  }
  if (version !== 6 || len < 40) return ICMP_NOT_ERROR;
  const end = off + 40 + ((buf[off + 4] << 8) | buf[off + 5]);
  if (end > off + len) return ICMP_NOT_ERROR;
  const t = walkIpv6Ext(buf, off + 40, buf[off + 6], end, nhOut);
  if (t < 0 || nhOut[0] !== 58 || t + 8 > end) return ICMP_NOT_ERROR;
  const type = buf[t];
  if (type < 1 || type > 4) return ICMP_NOT_ERROR;
  return quote6(buf, t + 8, end, key) ? ICMP_QUOTE_OK : ICMP_QUOTE_BAD;
}

/** Key of the quoted IPv4 packet at buf[q, qend), reversed. */
function quote4(buf: Uint8Array, q: number, qend: number, key: Uint32Array): boolean {
  if (q + 20 > qend || buf[q] >> 4 !== 4) return false;
  const ihl = (buf[q] & 0x0f) * 4;
  const total = (buf[q + 2] << 8) | buf[q + 3];
  if (ihl < 20 || q + ihl > qend || total < ihl) return false;
  const bound = q + total < qend ? q + total : qend;
  const proto = buf[q + 9];
  key[1] = (4 << 8) | proto;
  // Reversed: the error goes to the quoted packet's source.
  key[2] = ((buf[q + 16] << 24) | (buf[q + 17] << 16) | (buf[q + 18] << 8) | buf[q + 19]) >>> 0;
  key[3] = 0;
  key[4] = 0;
  key[5] = 0;
  key[6] = ((buf[q + 12] << 24) | (buf[q + 13] << 16) | (buf[q + 14] << 8) | buf[q + 15]) >>> 0;
  key[7] = 0;
  key[8] = 0;
  key[9] = 0;
  key[10] = 0;
  // A quoted non-first fragment has no ports; a quoted first fragment has them.
  if ((proto !== 6 && proto !== 17) || (((buf[q + 6] << 8) | buf[q + 7]) & 0x1fff) !== 0) return true;
  return ports(buf, q + ihl, bound, key);
}

/** Key of the quoted IPv6 packet at buf[q, qend), reversed. */
function quote6(buf: Uint8Array, q: number, qend: number, key: Uint32Array): boolean {
  if (q + 40 > qend || buf[q] >> 4 !== 6) return false;
  const declared = q + 40 + ((buf[q + 4] << 8) | buf[q + 5]);
  const bound = declared < qend ? declared : qend;
  let p = walkIpv6Ext(buf, q + 40, buf[q + 6], bound, nhOut);
  if (p < 0) return false;
  let nh = nhOut[0];
  let later = false;
  if (nh === 44) {
    // walkIpv6Ext checked that the whole fragment header is present.
    later = (((buf[p + 2] << 8) | buf[p + 3]) & 0xfff8) !== 0;
    nh = buf[p];
    p += 8;
  }
  key[1] = (6 << 8) | nh;
  for (let i = 0; i < 4; i++) {
    const s = q + 8 + 4 * i;
    const d = q + 24 + 4 * i;
    key[2 + i] = ((buf[d] << 24) | (buf[d + 1] << 16) | (buf[d + 2] << 8) | buf[d + 3]) >>> 0;
    key[6 + i] = ((buf[s] << 24) | (buf[s + 1] << 16) | (buf[s + 2] << 8) | buf[s + 3]) >>> 0;
  }
  key[10] = 0;
  if ((nh !== 6 && nh !== 17) || later) return true;
  return ports(buf, p, bound, key);
}

/** Ports of the quoted TCP/UDP header at buf[t], swapped (destination port first). */
function ports(buf: Uint8Array, t: number, bound: number, key: Uint32Array): boolean {
  if (t + 4 > bound) return false;
  key[10] = ((buf[t + 2] << 24) | (buf[t + 3] << 16) | (buf[t] << 8) | buf[t + 1]) >>> 0;
  return true;
}
