// Inner packet builder and textual address helpers for the GWLB emulator, the tests and the
// benchmarks: a tool (src/testkit/, docs/architecture.md "Layers"), never shipped with the daemon.
// Allocates freely; never used on the hot path.

import { internetChecksum, pseudoHeaderSum } from './checksum';

export interface InnerSpec {
  family: 4 | 6;
  proto: number; // 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, or any other number (payload follows IP header)
  src: string;
  dst: string; // textual IPv4/IPv6 addresses
  srcPort?: number;
  dstPort?: number; // TCP/UDP; default 0
  tcpFlags?: number;
  tcpSeq?: number; // defaults: ACK|PSH (0x18), 1
  icmpId?: number;
  icmpSeq?: number; // echo request for proto 1 (IPv4) / 58 (IPv6); default 0
  ttl?: number; // default 64 (IPv6 hop limit)
  payload: Uint8Array;
  ipv4Options?: Uint8Array; // multiple of 4 bytes, <= 40
  /** In order, before the upper layer (and before the fragment header). Types 0, 43, 60, 135, 139,
   * 140: total length a multiple of 8 (default 8); 51 AH: a multiple of 4, at least 12 (default 12). */
  ipv6ExtHeaders?: Array<{ type: number; length?: number }>;
  /** offset in 8-byte units. IPv4: ID, MF flag and offset. IPv6: adds a fragment header (the last
   * extension header). For offset > 0 no transport header is written: `payload` is the raw
   * fragment data. */
  fragment?: { offset: number; more: boolean; id: number };
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** Parses a textual IPv4 (strict dotted quad: four decimal numbers 0-255, no leading zeros) or
 * IPv6 address (RFC 4291 text: 1-4 hex digits per group, one '::', optional trailing dotted quad;
 * no zone ID, no prefix length). Throws TypeError on anything else. */
export function parseIp(s: string): { family: 4 | 6; bytes: Uint8Array } {
  if (typeof s !== 'string') throw new TypeError('address must be a string');
  if (s.includes(':')) {
    const bytes = parseIpv6(s);
    if (bytes === null) throw new TypeError(`bad IPv6 address: ${JSON.stringify(s)}`);
    return { family: 6, bytes };
  }
  const bytes = parseIpv4(s);
  if (bytes === null) throw new TypeError(`bad IPv4 address: ${JSON.stringify(s)}`);
  return { family: 4, bytes };
}

function parseIpv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    // No leading zeros: "010" would be octal to inet_aton and decimal to others.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i])) return null;
    const v = Number(parts[i]);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseIpv6(s: string): Uint8Array | null {
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const words: number[] = [];
  const all = halves.length === 2 ? [head, tail] : [head];
  const wordsOf: number[][] = [];
  for (let h = 0; h < all.length; h++) {
    const ws: number[] = [];
    const list = all[h];
    for (let i = 0; i < list.length; i++) {
      const g = list[i];
      const lastOfAddress = h === all.length - 1 && i === list.length - 1;
      if (lastOfAddress && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null) return null;
        ws.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        ws.push(parseInt(g, 16));
      }
    }
    wordsOf.push(ws);
  }
  if (halves.length === 2) {
    const n = wordsOf[0].length + wordsOf[1].length;
    if (n > 7) return null; // '::' stands for at least one zero group
    words.push(...wordsOf[0], ...new Array<number>(8 - n).fill(0), ...wordsOf[1]);
  } else {
    if (wordsOf[0].length !== 8) return null;
    words.push(...wordsOf[0]);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  return out;
}

/** Formats 4 bytes as a dotted quad, 16 bytes as RFC 5952 text (lower case, no leading zeros, the
 * longest run of two or more zero groups, the first on a tie, as '::'; no dotted-quad tail, also
 * not for IPv4-mapped addresses). Same text as the WHATWG URL serializer. Throws on other lengths. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new TypeError(`address must be 4 or 16 bytes, got ${bytes.length}`);
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  let bestStart = -1, bestLen = 1; // runs of length 1 are not compressed
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

// ---------------------------------------------------------------------------------------------
// Packets

function checkInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} must be an integer in 0..${max}, got ${v}`);
  return v;
}

/** Big-endian 16- and 32-bit stores (network byte order). */
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Option area of a hop-by-hop or destination options header, filled so that Linux accepts it:
 * Linux drops more than 7 consecutive padding bytes (RFC 4942 2.1.9.5), so large areas are filled
 * with the experimental option type 0x1e (RFC 4727; action bits 00: skip if unknown). */
function fillTlvArea(b: Uint8Array, o: number, len: number): void {
  let rem = len;
  while (rem > 0) {
    if (rem === 1) {
      b[o] = 0; // Pad1
      return;
    }
    if (rem <= 7) {
      b[o] = 1; // PadN
      b[o + 1] = rem - 2;
      return;
    }
    let n = Math.min(rem, 257);
    if (rem - n === 1) n--; // leave 2 bytes for a PadN, not a lone Pad1 after it
    b[o] = 0x1e;
    b[o + 1] = n - 2;
    o += n;
    rem -= n;
  }
}

function buildExtHeader(type: number, length: number | undefined, next: number): Uint8Array {
  if (type === 51) {
    const len = length ?? 12;
    if (!Number.isInteger(len) || len < 12 || len % 4 !== 0 || len > 257 * 4) throw new RangeError(`AH length must be a multiple of 4 in 12..1028, got ${len}`);
    const h = new Uint8Array(len);
    h[0] = next;
    h[1] = len / 4 - 2;
    put32(h, 4, 0x1000); // SPI (1..255 are reserved)
    put32(h, 8, 1); // sequence number; the ICV (if any) stays zero
    return h;
  }
  if (type === 0 || type === 43 || type === 60 || type === 135 || type === 139 || type === 140) {
    const len = length ?? 8;
    if (!Number.isInteger(len) || len < 8 || len % 8 !== 0 || len > 256 * 8) throw new RangeError(`extension header length must be a multiple of 8 in 8..2048, got ${len}`);
    const h = new Uint8Array(len);
    h[0] = next;
    h[1] = len / 8 - 1;
    if (type === 0 || type === 60) fillTlvArea(h, 2, len - 2);
    // Routing: type 253 (RFC 4727 experimental; type 0 is deprecated), segments left 0, so every
    // node ignores it. Mobility, HIP, shim6: zero bodies (never processed in forwarding).
    else if (type === 43) h[2] = 253;
    return h;
  }
  throw new RangeError(`unsupported IPv6 extension header type ${type} (use 'fragment' for 44)`);
}

/** The transport header + payload, checksum included (pseudo-header sum given for TCP/UDP/ICMPv6). */
function buildTransport(spec: InnerSpec, srcB: Uint8Array, dstB: Uint8Array): Uint8Array {
  const proto = spec.proto;
  const payload = spec.payload;
  const frag = spec.fragment;
  // A non-first fragment is raw data. The first fragment (offset 0, more) gets a transport header
  // whose lengths and checksum cover only this fragment's bytes.
  if (frag !== undefined && frag.offset > 0) return payload.slice();
  const sport = checkInt('srcPort', spec.srcPort ?? 0, 0xffff);
  const dport = checkInt('dstPort', spec.dstPort ?? 0, 0xffff);
  if (proto === 6) {
    const t = new Uint8Array(20 + payload.length);
    const flags = checkInt('tcpFlags', spec.tcpFlags ?? 0x18, 0x1ff);
    put16(t, 0, sport);
    put16(t, 2, dport);
    put32(t, 4, checkInt('tcpSeq', spec.tcpSeq ?? 1, 0xffffffff));
    put32(t, 8, flags & 0x10 ? 1 : 0); // acknowledgment number when ACK is set
    t[12] = (5 << 4) | (flags >> 8); // data offset 5 words; NS flag
    t[13] = flags & 0xff;
    put16(t, 14, 65535); // window
    t.set(payload, 20);
    put16(t, 16, internetChecksum(t, 0, t.length, pseudoHeaderSum(srcB, dstB, 6, t.length)));
    return t;
  }
  if (proto === 17) {
    const t = new Uint8Array(8 + payload.length);
    if (t.length > 0xffff) throw new RangeError('UDP datagram too long');
    put16(t, 0, sport);
    put16(t, 2, dport);
    put16(t, 4, t.length);
    t.set(payload, 8);
    const c = internetChecksum(t, 0, t.length, pseudoHeaderSum(srcB, dstB, 17, t.length));
    put16(t, 6, c === 0 ? 0xffff : c); // 0 means "no checksum" in UDP
    return t;
  }
  const icmp4 = proto === 1 && spec.family === 4;
  const icmp6 = proto === 58 && spec.family === 6;
  if (icmp4 || icmp6) {
    const t = new Uint8Array(8 + payload.length);
    t[0] = icmp4 ? 8 : 128; // echo request
    put16(t, 4, checkInt('icmpId', spec.icmpId ?? 0, 0xffff));
    put16(t, 6, checkInt('icmpSeq', spec.icmpSeq ?? 0, 0xffff));
    t.set(payload, 8);
    // ICMPv4 has no pseudo-header; ICMPv6 does (RFC 4443 2.3).
    put16(t, 2, internetChecksum(t, 0, t.length, icmp6 ? pseudoHeaderSum(srcB, dstB, 58, t.length) : 0));
    return t;
  }
  return payload.slice();
}

/** Returns a new Uint8Array with the complete packet, correct IPv4 header checksum and
 * TCP/UDP/ICMP/ICMPv6 checksums (with pseudo-header) where a full transport header is written.
 * Throws (RangeError/TypeError) on inconsistent specs: address family mismatch, bad lengths,
 * ipv4Options on IPv6 or ipv6ExtHeaders on IPv4, out-of-range fields, oversized packets. */
export function buildInnerPacket(spec: InnerSpec): Uint8Array {
  const src = parseIp(spec.src);
  const dst = parseIp(spec.dst);
  if (spec.family !== 4 && spec.family !== 6) throw new RangeError(`family must be 4 or 6, got ${String(spec.family)}`);
  if (src.family !== spec.family || dst.family !== spec.family) throw new TypeError('src/dst address family does not match spec.family');
  const proto = checkInt('proto', spec.proto, 255);
  const ttl = checkInt('ttl', spec.ttl ?? 64, 255);
  const frag = spec.fragment;
  if (frag !== undefined) {
    checkInt('fragment.offset', frag.offset, 0x1fff);
    checkInt('fragment.id', frag.id, spec.family === 4 ? 0xffff : 0xffffffff);
  }
  const l4 = buildTransport(spec, src.bytes, dst.bytes);

  if (spec.family === 4) {
    if (spec.ipv6ExtHeaders !== undefined && spec.ipv6ExtHeaders.length > 0) throw new TypeError('ipv6ExtHeaders on an IPv4 packet');
    const opts = spec.ipv4Options ?? new Uint8Array(0);
    if (opts.length % 4 !== 0 || opts.length > 40) throw new RangeError('ipv4Options must be a multiple of 4 bytes, at most 40');
    const ihl = 20 + opts.length;
    const total = ihl + l4.length;
    if (total > 0xffff) throw new RangeError('IPv4 packet too long');
    const p = new Uint8Array(total);
    p[0] = 0x40 | (ihl / 4);
    put16(p, 2, total);
    if (frag !== undefined) {
      put16(p, 4, frag.id);
      put16(p, 6, (frag.more ? 0x2000 : 0) | frag.offset);
    }
    p[8] = ttl;
    p[9] = proto;
    p.set(src.bytes, 12);
    p.set(dst.bytes, 16);
    p.set(opts, 20);
    put16(p, 10, internetChecksum(p, 0, ihl, 0));
    p.set(l4, ihl);
    return p;
  }

  if (spec.ipv4Options !== undefined && spec.ipv4Options.length > 0) throw new TypeError('ipv4Options on an IPv6 packet');
  const list = spec.ipv6ExtHeaders ?? [];
  const exts: Uint8Array[] = [];
  for (let i = 0; i < list.length; i++) {
    const next = i + 1 < list.length ? list[i + 1].type : frag !== undefined ? 44 : proto;
    exts.push(buildExtHeader(list[i].type, list[i].length, next));
  }
  if (frag !== undefined) {
    const f = new Uint8Array(8);
    f[0] = proto;
    put16(f, 2, (frag.offset << 3) | (frag.more ? 1 : 0));
    put32(f, 4, frag.id);
    exts.push(f);
  }
  let extLen = 0;
  for (const e of exts) extLen += e.length;
  const payloadLen = extLen + l4.length;
  if (payloadLen > 0xffff) throw new RangeError('IPv6 payload too long (no jumbograms)');
  const p = new Uint8Array(40 + payloadLen);
  p[0] = 0x60;
  put16(p, 4, payloadLen);
  p[6] = list.length > 0 ? list[0].type : frag !== undefined ? 44 : proto;
  p[7] = ttl;
  p.set(src.bytes, 8);
  p.set(dst.bytes, 24);
  let o = 40;
  for (const e of exts) {
    p.set(e, o);
    o += e.length;
  }
  p.set(l4, o);
  return p;
}

/** A copy of the IPv4/IPv6 packet with TTL / hop limit decremented (IPv4 header checksum
 * recomputed): what Linux forwarding emits. Throws when the packet is not IPv4/IPv6, is shorter
 * than its header, or has TTL/hop limit <= 1 (the kernel would drop it, not forward it). */
export function decrementTtl(pkt: Uint8Array): Uint8Array {
  const c = pkt.slice();
  const v = c.length > 0 ? c[0] >> 4 : 0;
  if (v === 4) {
    const ihl = (c[0] & 0x0f) * 4;
    if (c.length < 20 || ihl < 20 || ihl > c.length) throw new RangeError('truncated IPv4 header');
    if (c[8] <= 1) throw new RangeError(`TTL ${c[8]} would not be forwarded`);
    c[8]--;
    c[10] = 0;
    c[11] = 0;
    // A full recomputation yields the same value as the kernel's incremental update
    // (ip_decrease_ttl): both lie in 0..0xfffe and are congruent mod 0xffff.
    put16(c, 10, internetChecksum(c, 0, ihl, 0));
    return c;
  }
  if (v === 6) {
    if (c.length < 40) throw new RangeError('truncated IPv6 header');
    if (c[7] <= 1) throw new RangeError(`hop limit ${c[7]} would not be forwarded`);
    c[7]--;
    return c;
  }
  throw new TypeError('not an IPv4/IPv6 packet');
}

/** The byte arrays one after another, in a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A 64-bit unsigned value as 8 big-endian bytes. */
export function u64Bytes(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}
