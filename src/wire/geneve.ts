// Geneve (RFC 8926) as GWLB sends it: validation of received packets (hot path) and a header
// builder (emulator and tests). Facts: docs/protocol.md section 1.
//
// Layout of the base header (8 bytes):
//   byte 0: Ver (2 bits) | Opt Len (6 bits, 4-byte words)   byte 1: O | C | reserved
//   bytes 2-3: protocol type   bytes 4-6: VNI   byte 7: reserved
// Each option: class (16 bits), type (8 bits), reserved (3 bits) | length (5 bits, 4-byte words
// of data, not counting the 4-byte option header), data.

import { Drop } from './reasons';

export const GENEVE_PORT = 6081;
export const AWS_OPTION_CLASS = 0x0108;
export const GENEVE_HEADER_MAX = 8 + 63 * 4; // 260

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

/** Filled by parseGeneve; one instance is reused for every packet (no allocation per packet). */
export class GeneveInfo {
  headerLen = 0; // 8 + option bytes: the inner packet starts at off + headerLen
  protocol = 0; // 0x0800 or 0x86dd
  vni = 0;
  eniHi = 0;
  eniLo = 0; // the 64-bit ENI ID as two uint32 halves (>>> 0, never negative)
  attachHi = 0;
  attachLo = 0; // attachment ID
  cookie = 0; // flow cookie (uint32)
  innerLen = 0; // bytes of inner packet = len - headerLen
}

/** Validate the Geneve packet at buf[off, off+len) exactly as docs/protocol.md section 1, plus the inner
 * IP header sanity. Returns 0 when valid (out filled) or a Drop.* reason code. Never throws,
 * for any bytes and any len (treat len > buf.length - off as truncated input). No allocation.
 *
 * `out` is written only when the result is 0; on a drop it keeps its previous contents.
 *
 * Option types are compared as the full type byte, so the AWS options match only as types 1, 2
 * and 3 exactly as GWLB sends them (critical bit clear). A class-0x0108 option with the critical
 * bit set (0x81..0x83) is therefore an unknown option and, like every unknown option, is skipped
 * (RFC 8926 would have a tunnel endpoint drop unknown critical options; the brief chose skipping). */
export function parseGeneve(buf: Uint8Array, off: number, len: number, out: GeneveInfo): number {
  // Clamp to the bytes that exist, so every read below is in bounds (no undefined reads, which
  // would also make the loads polymorphic). A bad offset is treated as an empty packet.
  const avail = buf.length - off;
  if (!(off >= 0 && avail >= 0 && off === Math.floor(off))) return Drop.GENEVE_TOO_SHORT;
  if (!(len <= avail)) len = len > avail ? avail : 0; // also maps NaN to 0
  if (!(len >= 8)) return Drop.GENEVE_TOO_SHORT;
  len = Math.floor(len);

  const b0 = buf[off];
  if (b0 >> 6 !== 0) return Drop.GENEVE_BAD_VERSION;
  const protocol = (buf[off + 2] << 8) | buf[off + 3];
  if (protocol !== ETH_P_IP && protocol !== ETH_P_IPV6) return Drop.GENEVE_BAD_PROTOCOL;
  const headerLen = 8 + (b0 & 0x3f) * 4;
  if (headerLen > len) return Drop.GENEVE_OPTIONS_OVERRUN;

  // Option walk over [off+8, off+headerLen).
  const end = off + headerLen;
  let p = off + 8;
  let seen = 0; // bit t set when AWS option type t was seen
  let eniHi = 0, eniLo = 0, attachHi = 0, attachLo = 0, cookie = 0;
  while (p < end) {
    // Lengths are all multiples of 4, so this cannot trigger today; kept as the stated rule.
    if (end - p < 4) return Drop.GENEVE_OPTION_OVERRUN;
    const dataLen = (buf[p + 3] & 0x1f) * 4;
    const next = p + 4 + dataLen;
    if (next > end) return Drop.GENEVE_OPTION_OVERRUN;
    if (((buf[p] << 8) | buf[p + 1]) === AWS_OPTION_CLASS) {
      const type = buf[p + 2];
      const d = p + 4;
      if (type === 1) {
        if ((seen & 2) !== 0) return Drop.GENEVE_DUPLICATE_OPTION;
        if (dataLen !== 8) return Drop.GENEVE_BAD_ENI_LENGTH;
        seen |= 2;
        eniHi = ((buf[d] << 24) | (buf[d + 1] << 16) | (buf[d + 2] << 8) | buf[d + 3]) >>> 0;
        eniLo = ((buf[d + 4] << 24) | (buf[d + 5] << 16) | (buf[d + 6] << 8) | buf[d + 7]) >>> 0;
      } else if (type === 2) {
        if ((seen & 4) !== 0) return Drop.GENEVE_DUPLICATE_OPTION;
        if (dataLen !== 8) return Drop.GENEVE_BAD_ATTACHMENT_LENGTH;
        seen |= 4;
        attachHi = ((buf[d] << 24) | (buf[d + 1] << 16) | (buf[d + 2] << 8) | buf[d + 3]) >>> 0;
        attachLo = ((buf[d + 4] << 24) | (buf[d + 5] << 16) | (buf[d + 6] << 8) | buf[d + 7]) >>> 0;
      } else if (type === 3) {
        if ((seen & 8) !== 0) return Drop.GENEVE_DUPLICATE_OPTION;
        if (dataLen !== 4) return Drop.GENEVE_BAD_COOKIE_LENGTH;
        seen |= 8;
        cookie = ((buf[d] << 24) | (buf[d + 1] << 16) | (buf[d + 2] << 8) | buf[d + 3]) >>> 0;
      }
      // Other types of class 0x0108: unknown, skipped.
    }
    p = next;
  }
  if ((seen & 2) === 0) return Drop.GENEVE_MISSING_ENI;
  if ((seen & 4) === 0) return Drop.GENEVE_MISSING_ATTACHMENT;
  if ((seen & 8) === 0) return Drop.GENEVE_MISSING_COOKIE;

  // Inner IP header sanity. Trailing bytes after the IP total length are allowed (padding).
  const innerLen = len - headerLen;
  if (innerLen === 0) return Drop.INNER_EMPTY;
  const version = buf[end] >> 4;
  if (protocol === ETH_P_IP) {
    if (version !== 4) return Drop.INNER_VERSION_MISMATCH;
    if (innerLen < 20) return Drop.INNER_TRUNCATED;
    const ihlBytes = (buf[end] & 0x0f) * 4;
    if (ihlBytes < 20 || ihlBytes > innerLen) return Drop.INNER_TRUNCATED;
    const total = (buf[end + 2] << 8) | buf[end + 3];
    if (total < ihlBytes || total > innerLen) return Drop.INNER_TRUNCATED;
  } else {
    if (version !== 6) return Drop.INNER_VERSION_MISMATCH;
    if (innerLen < 40) return Drop.INNER_TRUNCATED;
    // Payload length 0 (a jumbogram's) passes here as a bare 40-byte header; the flow key parser
    // then rejects it, since its hop-by-hop header would lie beyond the declared end.
    if (40 + ((buf[end + 4] << 8) | buf[end + 5]) > innerLen) return Drop.INNER_TRUNCATED;
  }

  out.headerLen = headerLen;
  out.protocol = protocol;
  out.vni = (buf[off + 4] << 16) | (buf[off + 5] << 8) | buf[off + 6];
  out.eniHi = eniHi;
  out.eniLo = eniLo;
  out.attachHi = attachHi;
  out.attachLo = attachLo;
  out.cookie = cookie;
  out.innerLen = innerLen;
  return 0;
}

/** Build a Geneve header (base + the three AWS options in order ENI(type 1), attachment(2), cookie(3),
 * then `extraOptions` bytes verbatim, which must be whole options) at buf[off..]; returns its length.
 * For the emulator and tests; may allocate. */
export interface GeneveSpec {
  protocol: number;
  vni?: number;
  eni: bigint;
  attachment: bigint;
  cookie: number;
  extraOptions?: Uint8Array;
  omit?: Array<1 | 2 | 3>;
}

const U64_MAX = 0xffffffffffffffffn;

/** Writes the header described by `spec`; throws RangeError when it cannot be represented
 * (option area over 252 bytes, extraOptions not a multiple of 4 bytes, buffer too small, values out
 * of range). O and C flags and reserved fields are 0. `protocol` is written as given (16 bits), so
 * tests can build packets with a wrong protocol type. */
export function writeGeneveHeader(buf: Uint8Array, off: number, spec: GeneveSpec): number {
  const omit = spec.omit ?? [];
  const extra = spec.extraOptions ?? new Uint8Array(0);
  if (extra.length % 4 !== 0) throw new RangeError('extraOptions must be whole options (multiple of 4 bytes)');
  if (spec.eni < 0n || spec.eni > U64_MAX) throw new RangeError('eni out of 64-bit range');
  if (spec.attachment < 0n || spec.attachment > U64_MAX) throw new RangeError('attachment out of 64-bit range');
  if (!Number.isInteger(spec.cookie) || spec.cookie < 0 || spec.cookie > 0xffffffff) throw new RangeError('cookie must be uint32');
  const vni = spec.vni ?? 0;
  if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw new RangeError('vni must be 24 bits');
  if (!Number.isInteger(spec.protocol) || spec.protocol < 0 || spec.protocol > 0xffff) throw new RangeError('protocol must be 16 bits');

  const opts: Uint8Array[] = [];
  if (!omit.includes(1)) opts.push(makeGeneveOption(AWS_OPTION_CLASS, 1, u64Bytes(spec.eni)));
  if (!omit.includes(2)) opts.push(makeGeneveOption(AWS_OPTION_CLASS, 2, u64Bytes(spec.attachment)));
  if (!omit.includes(3)) opts.push(makeGeneveOption(AWS_OPTION_CLASS, 3, u32Bytes(spec.cookie)));
  opts.push(extra);
  let optLen = 0;
  for (const o of opts) optLen += o.length;
  if (optLen > 63 * 4) throw new RangeError(`option area of ${optLen} bytes exceeds 252`);
  const total = 8 + optLen;
  if (!Number.isInteger(off) || off < 0 || off + total > buf.length) throw new RangeError('buffer too small for the Geneve header');

  buf[off] = optLen / 4; // version 0
  buf[off + 1] = 0; // O, C, reserved
  buf[off + 2] = spec.protocol >> 8;
  buf[off + 3] = spec.protocol & 0xff;
  buf[off + 4] = vni >> 16;
  buf[off + 5] = (vni >> 8) & 0xff;
  buf[off + 6] = vni & 0xff;
  buf[off + 7] = 0;
  let p = off + 8;
  for (const o of opts) {
    buf.set(o, p);
    p += o.length;
  }
  return total;
}

/** One Geneve option (header + data) as bytes; `data` must be a multiple of 4 bytes, at most 124.
 * Extra export for the emulator and tests, to craft extraOptions (unknown or misplaced options). */
export function makeGeneveOption(optClass: number, type: number, data: Uint8Array): Uint8Array {
  if (data.length % 4 !== 0 || data.length > 31 * 4) throw new RangeError('option data must be a multiple of 4 bytes, at most 124');
  const o = new Uint8Array(4 + data.length);
  o[0] = (optClass >> 8) & 0xff;
  o[1] = optClass & 0xff;
  o[2] = type & 0xff;
  o[3] = data.length / 4; // reserved bits 0
  o.set(data, 4);
  return o;
}

function u64Bytes(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  for (let i = 7; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

function u32Bytes(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}
