// The IPv6 extension header walk shared by the fragment and ICMP error parsers (src/wire/fragments.ts,
// src/wire/icmp.ts). Same rules as src/wire/flowkey.ts: hop-by-hop 0, routing 43, destination
// options 60, mobility 135, HIP 139, shim6 140 (length (n+1)*8), AH 51 (length (n+2)*4), atomic
// fragment headers (offset 0, M 0) skipped; at most MAX_EXT_HEADERS headers. Hot path: no allocation.

import { MAX_EXT_HEADERS } from './flowkey';

/** Walk the extension headers starting at buf[p] (whose type is nh) without passing `end`.
 * Returns the offset of the first header that is neither a skippable extension header nor an
 * atomic fragment header, its type in out[0] (44 for a real fragment header), or -1 when a header
 * runs past `end` or the chain is longer than MAX_EXT_HEADERS. */
export function walkIpv6Ext(buf: Uint8Array, p: number, nh: number, end: number, out: Int32Array): number {
  for (let n = 0; ; n++) {
    if (n > MAX_EXT_HEADERS) return -1;
    if (nh === 0 || nh === 43 || nh === 60 || nh === 135 || nh === 139 || nh === 140) {
      if (p + 8 > end) return -1;
      const next = p + (buf[p + 1] + 1) * 8;
      if (next > end) return -1;
      nh = buf[p];
      p = next;
    } else if (nh === 51) {
      if (p + 8 > end) return -1;
      const next = p + (buf[p + 1] + 2) * 4;
      if (next > end) return -1;
      nh = buf[p];
      p = next;
    } else if (nh === 44) {
      if (p + 8 > end) return -1;
      // Offset (0xfff8) or M (0x0001) set: a real fragment, the walk stops at its header.
      if ((((buf[p + 2] << 8) | buf[p + 3]) & 0xfff9) !== 0) break;
      nh = buf[p];
      p += 8;
    } else {
      break;
    }
  }
  out[0] = nh;
  return p;
}
