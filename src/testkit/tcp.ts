// Test-only builders and checkers of inner IPv4/IPv6 TCP/UDP packets for the offload tests, the
// offload fuzzer and bench/offload.ts (here in src/testkit/ rather than under test/, so that bench/
// does not import from test/). Checksums here are computed the plain way (byte by byte, one
// 16-bit word at a time), independently of src/wire/checksum32.ts. Allocates freely.

export interface SegSpec {
  v6?: boolean;
  /** Last byte of the source / destination address (192.0.2.x -> 198.51.100.y, or 2001:db8::x -> ::y). */
  src?: number;
  dst?: number;
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  /** TCP flags byte; default ACK (0x10). */
  flags?: number;
  win?: number;
  urg?: number;
  options?: Uint8Array;
  payload?: Uint8Array;
  ttl?: number;
  tos?: number;
  id?: number;
  /** IPv4 flags/fragment word (default DF, 0x4000). */
  frag?: number;
  flowLabel?: number;
  /** Extra IPv4 option bytes (multiple of 4). */
  ipOptions?: Uint8Array;
  /** UDP instead of TCP. */
  udp?: boolean;
}

export function refSum(b: Uint8Array, off: number, len: number, sum = 0): number {
  for (let i = 0; i < len; i++) sum += i % 2 === 0 ? b[off + i] << 8 : b[off + i];
  return sum;
}
export function refFold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

function pseudo(p: Uint8Array, v6: boolean, proto: number, l4len: number): number {
  return v6 ? refSum(p, 8, 32) + proto + l4len : refSum(p, 12, 8) + proto + l4len;
}

export function buildSeg(s: SegSpec): Uint8Array {
  const v6 = s.v6 ?? false;
  const ipo = v6 ? new Uint8Array(0) : (s.ipOptions ?? new Uint8Array(0));
  const ip = v6 ? 40 : 20 + ipo.length;
  const opts = s.options ?? new Uint8Array(0);
  const th = s.udp ? 8 : 20 + opts.length;
  const pay = s.payload ?? new Uint8Array(0);
  const n = ip + th + pay.length;
  const p = new Uint8Array(n);
  const w16 = (o: number, v: number): void => {
    p[o] = (v >>> 8) & 0xff;
    p[o + 1] = v & 0xff;
  };
  const w32 = (o: number, v: number): void => {
    w16(o, (v >>> 16) & 0xffff);
    w16(o + 2, v & 0xffff);
  };
  const proto = s.udp ? 17 : 6;
  if (v6) {
    w32(0, ((6 << 28) | ((s.tos ?? 0) << 20) | ((s.flowLabel ?? 0) & 0xfffff)) >>> 0);
    w16(4, n - 40);
    p[6] = proto;
    p[7] = s.ttl ?? 64;
    p.set([0x20, 0x01, 0x0d, 0xb8], 8);
    p[23] = s.src ?? 1;
    p.set([0x20, 0x01, 0x0d, 0xb8], 24);
    p[39] = s.dst ?? 2;
  } else {
    p[0] = 0x40 | (ip / 4);
    p[1] = s.tos ?? 0;
    w16(2, n);
    w16(4, s.id ?? 0x1234);
    w16(6, s.frag ?? 0x4000);
    p[8] = s.ttl ?? 64;
    p[9] = proto;
    p.set([192, 0, 2, s.src ?? 1], 12);
    p.set([198, 51, 100, s.dst ?? 2], 16);
    p.set(ipo, 20);
    w16(10, ~refFold(refSum(p, 0, ip)) & 0xffff);
  }
  w16(ip, s.sport ?? 40000);
  w16(ip + 2, s.dport ?? 443);
  if (s.udp) {
    w16(ip + 4, th + pay.length);
  } else {
    w32(ip + 4, (s.seq ?? 1000) >>> 0);
    w32(ip + 8, (s.ack ?? 5000) >>> 0);
    p[ip + 12] = (th / 4) << 4;
    p[ip + 13] = s.flags ?? 0x10;
    w16(ip + 14, s.win ?? 501);
    w16(ip + 18, s.urg ?? 0);
    p.set(opts, ip + 20);
  }
  p.set(pay, ip + th);
  const co = ip + (s.udp ? 6 : 16);
  let c = ~refFold(refSum(p, ip, n - ip, pseudo(p, v6, proto, n - ip))) & 0xffff;
  if (s.udp && c === 0) c = 0xffff;
  w16(co, c);
  return p;
}

/** Why a packet's checksums are wrong, or '' when the IPv4 header checksum (IPv4) and the TCP/UDP
 * checksum are valid. Also checks the IP length fields against the packet's length. */
export function checkPacket(p: Uint8Array): string {
  const v6 = p[0] >> 4 === 6;
  const ip = v6 ? 40 : (p[0] & 15) * 4;
  if (v6) {
    if (((p[4] << 8) | p[5]) + 40 !== p.length) return 'ipv6 payload length';
  } else {
    if (((p[2] << 8) | p[3]) !== p.length) return 'ipv4 total length';
    if (refFold(refSum(p, 0, ip)) !== 0xffff) return 'ipv4 header checksum';
  }
  const proto = v6 ? p[6] : p[9];
  if (proto === 17 && ((p[ip + 4] << 8) | p[ip + 5]) !== p.length - ip) return 'udp length';
  if (refFold(refSum(p, ip, p.length - ip, pseudo(p, v6, proto, p.length - ip))) !== 0xffff) return 'l4 checksum';
  return '';
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Bytes 0..n-1 with a pattern depending on `salt`. */
export function pattern(n: number, salt: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + salt * 13 + (i >> 8)) & 0xff;
  return b;
}

/** A run of `count` in-order TCP segments of `mss` payload bytes (the last `lastLen` if given). */
export function stream(base: SegSpec, count: number, mss: number, lastLen?: number, lastFlags?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let seq = base.seq ?? 1000;
  for (let k = 0; k < count; k++) {
    const pl = k === count - 1 && lastLen !== undefined ? lastLen : mss;
    out.push(
      buildSeg({
        ...base,
        seq,
        id: ((base.id ?? 0x1234) + k) & 0xffff,
        payload: pattern(pl, k + (base.src ?? 1)),
        flags: k === count - 1 && lastFlags !== undefined ? lastFlags : base.flags,
      }),
    );
    seq = (seq + pl) >>> 0;
  }
  return out;
}
