// Flows for the flow table's tests (test/unit/flow-snapshot.test.ts, test/unit/state-file.test.ts):
// flow i's key, its reverse, its header, and a table filled with flows 0..n-1.

import { FlowTable, UPSERT_INSERTED } from '../../../src/flow/table';

const TCP = 6;
const UDP = 17;

/** Flow i: IPv4 or IPv6 (every third), TCP or UDP, endpoint id with a generation, documentation
 * addresses (192.0.2.0/24 -> 198.51.100.0/24; 2001:db8::/32). */
export function key(i: number, out: Uint32Array): Uint32Array {
  out.fill(0);
  const v6 = i % 3 === 0;
  out[0] = ((i % 5) | ((1 + (i % 3)) << 16)) >>> 0;
  out[1] = ((v6 ? 6 : 4) << 8) | (i % 2 === 0 ? TCP : UDP);
  if (v6) {
    out[2] = 0x20010db8;
    out[5] = i;
    out[6] = 0x20010db8;
    out[7] = 0xffff;
    out[9] = i >>> 8;
  } else {
    out[2] = (0xc0000200 | (i & 0xff)) >>> 0;
    out[6] = (0xc6336400 | ((i >>> 8) & 0xff)) >>> 0;
  }
  out[10] = (((1024 + (i % 60000)) << 16) | (i >>> 16)) >>> 0;
  return out;
}

export function reverse(k: Uint32Array, out: Uint32Array): Uint32Array {
  out[0] = k[0];
  out[1] = k[1];
  for (let w = 0; w < 4; w++) {
    out[2 + w] = k[6 + w];
    out[6 + w] = k[2 + w];
  }
  out[10] = ((k[10] << 16) | (k[10] >>> 16)) >>> 0;
  return out;
}

/** Header of flow i: 40 bytes (GWLB's), 8 or 60 for some. */
export function header(i: number, buf: Uint8Array): number {
  const len = i % 7 === 0 ? 60 : i % 11 === 0 ? 8 : 40;
  for (let b = 0; b < len; b++) buf[b] = (i * 13 + b * 7) & 0xff;
  return len;
}

export const GWLB = 0xc6120001; // 198.18.0.1
export const LOCAL = 0xc6120a05; // 198.18.10.5

/** Flows 0..n-1; returns how many went in without an eviction. */
export function fill(t: FlowTable, n: number, now: (i: number) => number): number {
  const k = new Uint32Array(11);
  const h = new Uint8Array(64);
  let inserted = 0;
  for (let i = 0; i < n; i++) {
    const len = header(i, h);
    if (t.upsert(key(i, k), h, 0, len, GWLB + (i % 4), LOCAL, 20000 + (i % 1000), now(i)) === UPSERT_INSERTED) inserted++;
  }
  return inserted;
}

