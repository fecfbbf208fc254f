// Input generators of the fuzzer: a seeded PRNG (reproducible runs), valid GWLB datagrams with
// random option layouts and random inner IPv4/IPv6 packets (IPv4 options, IPv6 extension header
// chains, fragments, odd transports), and mutations of them. Test code: allocates freely.

import { AWS_OPTION_CLASS, makeGeneveOption } from '../../src/wire/geneve';
import { buildInnerPacket, concatBytes, formatIp, type InnerSpec } from '../../src/testkit/build';

/** sfc32: small, fast, good enough for fuzzing, seeded from one 32-bit number. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** 0 .. n-1 */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

const concat = (parts: Uint8Array[]): Uint8Array => concatBytes(...parts);

const EXT = [0, 43, 60, 135, 139, 140, 51] as const;
const PROTOS = [6, 6, 17, 17, 1, 58, 47, 50, 59, 132] as const;

function addr(rng: Rng, family: 4 | 6): string {
  // In-memory bytes only (nothing is sent): any address will do, documentation ones mostly.
  if (rng.chance(0.2)) return formatIp(rng.bytes(family === 4 ? 4 : 16));
  if (family === 4) return `${rng.pick(['192.0.2', '198.51.100', '203.0.113'])}.${rng.int(256)}`;
  return `2001:db8:${rng.int(65536).toString(16)}::${rng.int(65536).toString(16)}`;
}

/** A well-formed inner packet (buildInnerPacket), sometimes with trailing padding. */
export function genInner(rng: Rng): Uint8Array {
  const family: 4 | 6 = rng.chance(0.5) ? 4 : 6;
  let proto: number = rng.chance(0.1) ? rng.int(256) : rng.pick(PROTOS);
  if (family === 6 && (proto === 0 || proto === 43 || proto === 44 || proto === 51 || proto === 60 || proto === 135 || proto === 139 || proto === 140)) proto = 17;
  const spec: InnerSpec = {
    family,
    proto,
    src: addr(rng, family),
    dst: addr(rng, family),
    srcPort: rng.int(65536),
    dstPort: rng.int(65536),
    payload: rng.bytes(rng.chance(0.7) ? rng.int(24) : rng.int(200)),
    ttl: rng.range(1, 255),
  };
  if (family === 4 && rng.chance(0.3)) spec.ipv4Options = rng.bytes(4 * rng.range(1, 10));
  if (family === 6 && rng.chance(0.5)) {
    const n = rng.chance(0.1) ? rng.range(14, 20) : rng.range(1, 4);
    spec.ipv6ExtHeaders = Array.from({ length: n }, () => {
      const type = rng.pick(EXT);
      return { type, length: type === 51 ? 12 + 4 * rng.int(4) : 8 * rng.range(1, 3) };
    });
  }
  if (rng.chance(0.25)) {
    const kind = rng.int(4); // first, middle, last, atomic (IPv6) / DF-only (IPv4)
    spec.fragment = kind === 3 ? { offset: 0, more: false, id: rng.int(65536) } : { offset: kind === 0 ? 0 : rng.range(1, 0x1fff), more: kind !== 2, id: rng.int(65536) };
  }
  let p = buildInnerPacket(spec);
  if (family === 4 && spec.fragment === undefined && rng.chance(0.2)) p[6] |= 0x40; // DF: not a fragment
  if (rng.chance(0.1)) p = concat([p, rng.bytes(rng.range(1, 8))]);
  return p;
}

/** Random bytes behind a plausible IP version nibble: odd IHLs, lengths and header chains. */
export function genRawInner(rng: Rng): Uint8Array {
  const v6 = rng.chance(0.5);
  const p = rng.bytes(rng.range(v6 ? 30 : 10, v6 ? 140 : 80));
  if (v6) {
    p[0] = 0x60 | (p[0] & 0x0f);
    const plen = rng.chance(0.7) ? p.length - 40 : rng.int(300);
    p[4] = (plen >> 8) & 0xff;
    p[5] = plen & 0xff;
    p[6] = rng.chance(0.7) ? rng.pick([0, 43, 44, 51, 60, 135, 139, 140, 6, 17, 58, 59]) : p[6];
    // Make the first few extension headers chain plausibly.
    for (let at = 40, i = 0; at + 2 < p.length && i < 4; i++) {
      p[at] = rng.pick([0, 43, 44, 51, 60, 6, 17, 59]);
      p[at + 1] = rng.int(3);
      at += 8 * (p[at + 1] + 1);
    }
  } else {
    p[0] = 0x40 | (rng.chance(0.7) ? 5 + rng.int(3) : rng.int(16));
    const total = rng.chance(0.7) ? p.length : rng.int(120);
    p[2] = (total >> 8) & 0xff;
    p[3] = total & 0xff;
    p[9] = rng.pick([6, 17, 1, 47, p[9]]);
    if (rng.chance(0.5)) {
      p[6] = 0;
      p[7] = 0;
    }
  }
  return p;
}

function u64(rng: Rng): Uint8Array {
  return rng.bytes(8);
}

/** Options: the three AWS ones in random order (rarely missing, doubled or of a wrong length),
 * plus unknown options (other classes, other class-0x0108 types, critical-bit types). */
export function genOptions(rng: Rng): Uint8Array[] {
  const opts: Uint8Array[] = [];
  const aws = [1, 2, 3];
  for (const t of aws) {
    if (rng.chance(0.03)) continue; // missing
    const want = t === 3 ? 4 : 8;
    const len = rng.chance(0.03) ? rng.pick([0, 4, 8, 12, 16]) : want;
    opts.push(makeGeneveOption(AWS_OPTION_CLASS, t, t === 3 ? rng.bytes(len) : len === 8 ? u64(rng) : rng.bytes(len)));
    if (rng.chance(0.02)) opts.push(makeGeneveOption(AWS_OPTION_CLASS, t, rng.bytes(want))); // duplicate
  }
  const unknown = rng.chance(0.4) ? rng.range(1, 4) : 0;
  for (let i = 0; i < unknown; i++) {
    const cls = rng.chance(0.5) ? AWS_OPTION_CLASS : rng.int(65536);
    const type = rng.chance(0.5) ? rng.pick([0, 4, 0x80, 0x81, 0x82, 0x83, 0xff]) : rng.int(256);
    opts.push(makeGeneveOption(cls, type, rng.bytes(4 * rng.int(rng.chance(0.9) ? 4 : 31))));
  }
  // Shuffle.
  for (let i = opts.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [opts[i], opts[j]] = [opts[j], opts[i]];
  }
  // Keep the area within 252 bytes.
  let total = 0;
  return opts.filter((o) => (total + o.length <= 252 ? ((total += o.length), true) : false));
}

/** A GWLB datagram: base header, options, inner packet. Mostly valid. */
export function genDatagram(rng: Rng): Uint8Array {
  const inner = rng.chance(0.85) ? genInner(rng) : genRawInner(rng);
  const opts = concat(genOptions(rng));
  const v = inner[0] >> 4;
  let protocol = v === 6 ? 0x86dd : 0x0800;
  if (rng.chance(0.03)) protocol = rng.pick([0x0800, 0x86dd, 0x6558, 0x0806, rng.int(65536)]);
  const base = Uint8Array.of(opts.length / 4, rng.chance(0.1) ? rng.int(256) & 0x3f : 0, protocol >> 8, protocol & 0xff, rng.int(256), rng.int(256), rng.int(256), 0);
  return concat([base, opts, inner]);
}

const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x11, 0x1f, 0x20, 0x2c, 0x33, 0x3a, 0x3b, 0x40, 0x45, 0x4f, 0x60, 0x86, 0xdd];

/** 1..4 mutations, biased towards the headers where the checks are. */
export function mutate(rng: Rng, src: Uint8Array, other?: Uint8Array): Uint8Array {
  let p: Uint8Array = src.slice();
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) {
    const at = p.length === 0 ? 0 : rng.chance(0.7) ? rng.int(Math.min(p.length, 120)) : rng.int(p.length);
    switch (rng.int(9)) {
      case 0:
        if (p.length > 0) p[at] ^= 1 << rng.int(8);
        break;
      case 1:
        if (p.length > 0) p[at] = rng.pick(INTERESTING);
        break;
      case 2:
        p = p.slice(0, rng.int(p.length + 1)); // truncate
        break;
      case 3:
        p = concat([p, rng.bytes(rng.range(1, 16))]);
        break;
      case 4:
        p = concat([p.subarray(0, at), rng.bytes(rng.range(1, 8)), p.subarray(at)]);
        break;
      case 5:
        p = concat([p.subarray(0, at), p.subarray(Math.min(p.length, at + rng.range(1, 8)))]);
        break;
      case 6:
        // Geneve option length (6 bits) or an option's length (5 bits at byte 3 of an option).
        if (p.length > 0) p[0] = (p[0] & 0xc0) | rng.int(64);
        if (p.length > 11 && rng.chance(0.5)) p[8 + 4 * rng.int(Math.min(8, (p.length - 8) >> 2)) + 3] = rng.int(32);
        break;
      case 7:
        if (other !== undefined && other.length > 0) {
          const from = rng.int(other.length);
          p = concat([p.subarray(0, at), other.subarray(from, from + rng.range(1, 64))]);
        }
        break;
      default:
        if (p.length > 4) {
          const v = rng.int(65536);
          const o = rng.int(p.length - 1);
          p[o] = v >> 8;
          p[o + 1] = v & 0xff;
        }
    }
  }
  return p;
}
