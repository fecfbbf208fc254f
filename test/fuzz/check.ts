// The fuzzer's oracle: runs one case (the bytes of a UDP payload as received on port 6081) through
// the receive path the data plane runs (parseGeneve, flowKeyFromIp, FlowTable.upsert) and the
// return path (flowKeyFromIp on the reversed inner packet, FlowTable.lookupInto), and checks:
//
// - nothing throws, and the results are known values (a Drop reason, a boolean, an UPSERT_*);
// - parseGeneve agrees with a reference model written from the rules in reasons.ts and
//   docs/protocol.md section 1 (same reason, same fields), honours `len` (bytes after it change
//   nothing; a len beyond the buffer reads as truncated), and leaves `out` alone on a drop;
// - headerLen / innerLen are in bounds;
// - flowKeyFromIp agrees with a reference model of the flow key rules in flowkey.ts, and never
//   writes key[0];
// - the key of the packet with source and destination (addresses and ports) swapped is the
//   swapped key, and a lookup with it right after the upsert finds the header just stored, with
//   the outer fields; the table never holds more than its capacity.
//
// It also returns a signature (reason + branch-ish features) so that the fuzzer can keep one
// example of every combination in the corpus. Allocates freely: test code.

import { GeneveInfo, parseGeneve } from '../../src/wire/geneve';
import { flowKeyFromIp, KEY_WORDS, MAX_EXT_HEADERS } from '../../src/wire/flowkey';
import { DROP_NAMES, Drop } from '../../src/wire/reasons';
import { createFlowTableBuffer, FlowTable, FLOW_HEADER_MAX, UPSERT_EVICTED, UPSERT_HEADER_TOO_LONG, UPSERT_INSERTED, UPSERT_REFRESHED } from '../../src/flow/table';

// ---- reference model: Geneve --------------------------------------------------------------------

export interface RefGeneve {
  reason: number;
  /** Options fully walked before the verdict (the branch depth, for the signature). */
  options: number;
  headerLen: number;
  protocol: number;
  vni: number;
  eni: bigint;
  attachment: bigint;
  cookie: number;
}

function be(b: Uint8Array, off: number, n: number): bigint {
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(b[off + i]);
  return v;
}

/** The rules, checked in the order reasons.ts lists them, on a plain byte array. */
export function refParseGeneve(p: Uint8Array): RefGeneve {
  const r: RefGeneve = { reason: 0, options: 0, headerLen: 0, protocol: 0, vni: 0, eni: 0n, attachment: 0n, cookie: 0 };
  const fail = (reason: number): RefGeneve => ({ ...r, reason });
  if (p.length < 8) return fail(Drop.GENEVE_TOO_SHORT);
  if (p[0] >> 6 !== 0) return fail(Drop.GENEVE_BAD_VERSION);
  r.protocol = (p[2] << 8) | p[3];
  if (r.protocol !== 0x0800 && r.protocol !== 0x86dd) return fail(Drop.GENEVE_BAD_PROTOCOL);
  r.headerLen = 8 + (p[0] & 0x3f) * 4;
  if (r.headerLen > p.length) return fail(Drop.GENEVE_OPTIONS_OVERRUN);
  const want: Record<number, [number, number]> = {
    1: [8, Drop.GENEVE_BAD_ENI_LENGTH],
    2: [8, Drop.GENEVE_BAD_ATTACHMENT_LENGTH],
    3: [4, Drop.GENEVE_BAD_COOKIE_LENGTH],
  };
  const seen = new Set<number>();
  for (let at = 8; at < r.headerLen; ) {
    if (r.headerLen - at < 4) return fail(Drop.GENEVE_OPTION_OVERRUN);
    const cls = (p[at] << 8) | p[at + 1];
    const type = p[at + 2];
    const len = (p[at + 3] & 0x1f) * 4;
    if (at + 4 + len > r.headerLen) return fail(Drop.GENEVE_OPTION_OVERRUN);
    if (cls === 0x0108 && want[type] !== undefined) {
      if (seen.has(type)) return fail(Drop.GENEVE_DUPLICATE_OPTION);
      if (len !== want[type][0]) return fail(want[type][1]);
      seen.add(type);
      if (type === 1) r.eni = be(p, at + 4, 8);
      else if (type === 2) r.attachment = be(p, at + 4, 8);
      else r.cookie = Number(be(p, at + 4, 4));
    }
    r.options++;
    at += 4 + len;
  }
  if (!seen.has(1)) return fail(Drop.GENEVE_MISSING_ENI);
  if (!seen.has(2)) return fail(Drop.GENEVE_MISSING_ATTACHMENT);
  if (!seen.has(3)) return fail(Drop.GENEVE_MISSING_COOKIE);
  const inner = p.subarray(r.headerLen);
  if (inner.length === 0) return fail(Drop.INNER_EMPTY);
  const version = inner[0] >> 4;
  if (r.protocol === 0x0800) {
    if (version !== 4) return fail(Drop.INNER_VERSION_MISMATCH);
    const ihl = (inner[0] & 15) * 4;
    if (inner.length < 20 || ihl < 20 || ihl > inner.length) return fail(Drop.INNER_TRUNCATED);
    const total = (inner[2] << 8) | inner[3];
    if (total < ihl || total > inner.length) return fail(Drop.INNER_TRUNCATED);
  } else {
    if (version !== 6) return fail(Drop.INNER_VERSION_MISMATCH);
    if (inner.length < 40 || 40 + ((inner[4] << 8) | inner[5]) > inner.length) return fail(Drop.INNER_TRUNCATED);
  }
  r.vni = (p[4] << 16) | (p[5] << 8) | p[6];
  return r;
}

// ---- reference model: flow key ------------------------------------------------------------------

export interface RefKey {
  family: 4 | 6;
  /** Upper-layer protocol. */
  proto: number;
  srcOff: number;
  dstOff: number;
  addrLen: number;
  /** Offset of the source port in the packet, or -1 when the key has no ports. */
  portOff: number;
  frag: 'none' | 'first' | 'later' | 'atomic';
  /** IPv4: bytes of options; IPv6: extension headers walked. */
  ext: number;
}

const EXT_8 = new Set([0, 43, 60, 135, 139, 140]);

/** flowkey.ts's rules on a plain byte array; when the key cannot be read, why (a short word). */
export function refFlowKey(p: Uint8Array): RefKey | string {
  if (p.length < 20) return 'short';
  const v = p[0] >> 4;
  if (v === 4) {
    const ihl = (p[0] & 15) * 4;
    const total = (p[2] << 8) | p[3];
    if (ihl < 20 || ihl > p.length) return 'ihl';
    if (total < ihl || total > p.length) return 'total';
    const proto = p[9];
    const fo = ((p[6] << 8) | p[7]) & 0x3fff;
    const frag = fo === 0 ? 'none' : (fo & 0x1fff) === 0 ? 'first' : 'later';
    const k: RefKey = { family: 4, proto, srcOff: 12, dstOff: 16, addrLen: 4, portOff: -1, frag, ext: ihl - 20 };
    if (frag !== 'none' || (proto !== 6 && proto !== 17)) return k;
    if (ihl + 4 > total) return 'ports';
    return { ...k, portOff: ihl };
  }
  if (v !== 6) return 'version';
  if (p.length < 40) return 'short';
  const end = 40 + ((p[4] << 8) | p[5]);
  if (end > p.length) return 'plen';
  let nh = p[6];
  let at = 40;
  let walked = 0;
  let frag: RefKey['frag'] = 'none';
  for (;;) {
    let size: number;
    if (EXT_8.has(nh)) size = -1;
    else if (nh === 51) size = -2;
    else if (nh === 44) size = 8;
    else break;
    if (at + 8 > end) return 'ext';
    if (size === -1) size = (p[at + 1] + 1) * 8;
    else if (size === -2) size = (p[at + 1] + 2) * 4;
    if (at + size > end) return 'ext';
    const next = p[at];
    if (nh === 44) {
      const offM = ((p[at + 2] << 8) | p[at + 3]) & 0xfff9;
      if (offM !== 0) {
        // A real fragment ends the walk before the header count is checked.
        return { family: 6, proto: next, srcOff: 8, dstOff: 24, addrLen: 16, portOff: -1, frag: offM >> 3 === 0 ? 'first' : 'later', ext: walked + 1 };
      }
      frag = 'atomic';
    }
    nh = next;
    at += size;
    if (++walked > MAX_EXT_HEADERS) return 'chain';
  }
  const k: RefKey = { family: 6, proto: nh, srcOff: 8, dstOff: 24, addrLen: 16, portOff: -1, frag, ext: walked };
  if (nh !== 6 && nh !== 17) return k;
  if (at + 4 > end) return 'ports';
  return { ...k, portOff: at };
}

/** The key words [1..10] the reference model gives (key[0] is the caller's). */
export function refKeyWords(p: Uint8Array, k: RefKey, swap = false): number[] {
  const addr = (off: number): number[] => {
    const w = [0, 0, 0, 0];
    for (let i = 0; i < k.addrLen; i++) w[i >> 2] = (w[i >> 2] * 256 + p[off + i]) >>> 0;
    return w;
  };
  const s = addr(swap ? k.dstOff : k.srcOff);
  const d = addr(swap ? k.srcOff : k.dstOff);
  let ports = 0;
  if (k.portOff >= 0) {
    const sp = (p[k.portOff] << 8) | p[k.portOff + 1];
    const dp = (p[k.portOff + 2] << 8) | p[k.portOff + 3];
    ports = swap ? ((dp << 16) | sp) >>> 0 : ((sp << 16) | dp) >>> 0;
  }
  return [((k.family << 8) | k.proto) >>> 0, ...s, ...d, ports];
}

/** The same packet sent the other way: addresses (and ports, when keyed) swapped. */
export function reversePacket(p: Uint8Array, k: RefKey): Uint8Array {
  const r = p.slice();
  r.set(p.subarray(k.dstOff, k.dstOff + k.addrLen), k.srcOff);
  r.set(p.subarray(k.srcOff, k.srcOff + k.addrLen), k.dstOff);
  if (k.portOff >= 0) {
    r.set(p.subarray(k.portOff + 2, k.portOff + 4), k.portOff);
    r.set(p.subarray(k.portOff, k.portOff + 2), k.portOff + 2);
  }
  return r;
}

// ---- the checker ----------------------------------------------------------------------------------

export interface CaseResult {
  /** What the data plane does with it: 0 delivered, else the Drop reason it is counted under. */
  verdict: number;
  signature: string;
  violations: string[];
}

const SENT = 0x5a5a5a5a;

/** Table shared by every case of a process: small, so that it is full and evicts most of the time. */
export class Harness {
  readonly table = new FlowTable(createFlowTableBuffer(256));
  private now = 1000;
  private epId = 1;
  readonly stats = { cases: 0, inserted: 0, refreshed: 0, evicted: 0, tooLong: 0 };

  /** Check one case. `junk` (0..255) fills the bytes after the case in the padded copy. */
  check(bytes: Uint8Array, junk = 0xa5): CaseResult {
    const v: string[] = [];
    const guard = <T>(what: string, fn: () => T): T | undefined => {
      try {
        return fn();
      } catch (e) {
        v.push(`${what} threw: ${(e as Error).stack ?? String(e)}`);
        return undefined;
      }
    };
    this.stats.cases++;
    const ref = refParseGeneve(bytes);

    // parseGeneve: exact buffer, then at an odd offset with junk after len, then len past the end.
    const gi = new GeneveInfo();
    fillSentinel(gi);
    const r = guard('parseGeneve', () => parseGeneve(bytes, 0, bytes.length, gi));
    if (r === undefined) return { verdict: -1, signature: 'throw', violations: v };
    if (!(Number.isInteger(r) && r >= 0 && r <= Drop.INNER_TRUNCATED)) v.push(`parseGeneve returned ${r}, not a Geneve reason`);
    if (r !== ref.reason) v.push(`parseGeneve says ${DROP_NAMES[r] || r} but the reference says ${DROP_NAMES[ref.reason] || 'accepted'}`);
    if (r !== 0 && !isSentinel(gi)) v.push('parseGeneve wrote `out` on a drop');
    const padded = new Uint8Array(bytes.length + 37).fill(junk);
    padded.set(bytes, 13);
    const gi2 = new GeneveInfo();
    const r2 = guard('parseGeneve(padded)', () => parseGeneve(padded, 13, bytes.length, gi2));
    if (r2 !== r) v.push(`parseGeneve depends on bytes after len: ${r} vs ${r2}`);
    const r3 = guard('parseGeneve(len past end)', () => parseGeneve(bytes, 0, bytes.length + 100, new GeneveInfo()));
    if (r3 !== r) v.push(`len past the end of the buffer is not read as the bytes present: ${r} vs ${r3}`);

    let verdict = r;
    let keySig = '';
    if (r === 0) {
      if (!(gi.headerLen >= 8 && gi.headerLen <= 260 && gi.headerLen % 4 === 0)) v.push(`headerLen ${gi.headerLen} out of bounds`);
      if (gi.innerLen !== bytes.length - gi.headerLen || gi.innerLen < 20) v.push(`innerLen ${gi.innerLen} (len ${bytes.length}, headerLen ${gi.headerLen})`);
      if (gi.headerLen !== ref.headerLen || gi.protocol !== ref.protocol || gi.vni !== ref.vni || gi.cookie !== ref.cookie ||
        ((BigInt(gi.eniHi) << 32n) | BigInt(gi.eniLo)) !== ref.eni || ((BigInt(gi.attachHi) << 32n) | BigInt(gi.attachLo)) !== ref.attachment) {
        v.push('parseGeneve fields differ from the reference');
      }
      for (const [name, x] of [['gi2', gi2.headerLen], ['gi2len', gi2.innerLen]] as const) {
        if (x !== (name === 'gi2' ? gi.headerLen : gi.innerLen)) v.push(`padded parse differs in ${name}`);
      }
      const res = this.checkInner(bytes, gi, v);
      verdict = res.verdict;
      keySig = res.sig;
    }
    // Signature: the verdict and the branch-ish features that lead to it, kept coarse so that the
    // corpus stays small (one example each): option count for header rejections, protocol type and
    // inner version nibble for inner rejections, and for keyed packets family, transport, fragment
    // class, options/extension headers and header length.
    let sig: string;
    if (r === 0) sig = `${verdict === 0 ? 'delivered' : DROP_NAMES[verdict]}|v${gi.protocol === 0x0800 ? 4 : 6}${keySig}`;
    else if (r >= Drop.INNER_EMPTY) {
      const nib = bytes.length > ref.headerLen ? bytes[ref.headerLen] >> 4 : -1;
      sig = `${DROP_NAMES[r]}|p${ref.protocol === 0x0800 ? 4 : 6}|n${nib === 4 || nib === 6 ? nib : nib < 0 ? '-' : 'x'}`;
    } else sig = `${DROP_NAMES[r]}|o${ref.options >= 4 ? '4p' : ref.options}`;
    return { verdict, signature: sig, violations: v };
  }

  private checkInner(bytes: Uint8Array, gi: GeneveInfo, v: string[]): { verdict: number; sig: string } {
    const inner = bytes.subarray(gi.headerLen);
    const ref = refFlowKey(inner);
    const key = new Uint32Array(KEY_WORDS).fill(SENT);
    let ok: boolean | undefined;
    try {
      ok = flowKeyFromIp(bytes, gi.headerLen, gi.innerLen, key);
    } catch (e) {
      v.push(`flowKeyFromIp threw: ${(e as Error).stack}`);
      return { verdict: -1, sig: '|throw' };
    }
    if (typeof ok !== 'boolean') v.push(`flowKeyFromIp returned ${String(ok)}`);
    if (key[0] !== SENT) v.push('flowKeyFromIp wrote key[0]');
    if (ok !== (typeof ref !== 'string')) {
      v.push(`flowKeyFromIp says ${ok} but the reference says ${typeof ref === 'string' ? 'no key: ' + ref : 'a key'}`);
      return { verdict: Drop.INNER_TRUNCATED, sig: '|keymismatch' };
    }
    if (typeof ref === 'string') return { verdict: Drop.INNER_TRUNCATED, sig: `|nokey-${ref}` };
    const words = refKeyWords(inner, ref);
    for (let i = 1; i < KEY_WORDS; i++) {
      if (key[i] !== words[i - 1]) {
        v.push(`key word ${i}: ${key[i]} but the reference says ${words[i - 1]}`);
        break;
      }
    }

    // Return path: the reversed packet keys to the swapped key and finds the stored header.
    const rev = reversePacket(inner, ref);
    const rkey = new Uint32Array(KEY_WORDS).fill(SENT);
    if (!flowKeyFromIp(rev, 0, rev.length, rkey)) v.push('the reversed packet has no key');
    else {
      const sw = refKeyWords(inner, ref, true);
      for (let i = 1; i < KEY_WORDS; i++) {
        if (rkey[i] !== sw[i - 1]) {
          v.push(`reverse key word ${i}: ${rkey[i]}, want ${sw[i - 1]}`);
          break;
        }
      }
    }
    const ep = (this.epId = (this.epId % 7) + 1) >>> 0; // a few endpoints: the id is part of the key
    key[0] = ep;
    rkey[0] = ep;
    this.now += 1;
    const gwlb = (0xc6120000 | (this.stats.cases & 0xff)) >>> 0;
    const local = 0xc6120002;
    const port = (this.stats.cases * 7919) & 0xffff;
    const u = this.table.upsert(key, bytes, 0, gi.headerLen, gwlb, local, port, this.now);
    const t = this.table;
    if (u === UPSERT_HEADER_TOO_LONG) {
      this.stats.tooLong++;
      if (gi.headerLen <= FLOW_HEADER_MAX) v.push(`UPSERT_HEADER_TOO_LONG for a ${gi.headerLen}-byte header`);
      // The flow's older header (an earlier case of the same key) must be gone with it.
      if (t.lookupInto(rkey, new Uint8Array(200), 150, this.now) !== -1) v.push('a flow whose latest header was too long is still found');
    } else if (u === UPSERT_INSERTED || u === UPSERT_REFRESHED || u === UPSERT_EVICTED) {
      if (u === UPSERT_INSERTED) this.stats.inserted++;
      else if (u === UPSERT_REFRESHED) this.stats.refreshed++;
      else this.stats.evicted++;
      if (gi.headerLen > FLOW_HEADER_MAX) v.push(`a ${gi.headerLen}-byte header was stored`);
      const out = new Uint8Array(200).fill(0xee);
      const h = t.lookupInto(rkey, out, 150, this.now);
      if (h !== gi.headerLen) v.push(`lookup of the reverse after upsert returned ${h}, want ${gi.headerLen}`);
      else {
        for (let i = 0; i < h; i++) {
          if (out[150 - h + i] !== bytes[i]) {
            v.push(`stored header differs at byte ${i}`);
            break;
          }
        }
        if (t.hitGwlbIp !== gwlb || t.hitLocalIp !== local || t.hitGwlbPort !== port) v.push('lookup hit fields differ');
        if (out[150] !== 0xee || out[150 - h - 1] !== 0xee) v.push('lookup wrote outside [endOff - hdrLen, endOff)');
      }
    } else v.push(`upsert returned ${u}`);
    if (t.size() > t.capacity || t.size() < 0) v.push(`table size ${t.size()} outside 0..${t.capacity}`);

    const l4 = ref.proto === 6 ? 'tcp' : ref.proto === 17 ? 'udp' : 'other';
    const ext = ref.family === 4 ? (ref.ext > 0 ? 'opt' : 'noopt') : ref.ext === 0 ? 'x0' : ref.ext === 1 ? 'x1' : 'x2p';
    const hdr = gi.headerLen > FLOW_HEADER_MAX ? '|longhdr' : '';
    return { verdict: 0, sig: `|${l4}|${ref.frag}|${ext}${hdr}` };
  }
}

function fillSentinel(g: GeneveInfo): void {
  g.headerLen = g.protocol = g.vni = g.eniHi = g.eniLo = g.attachHi = g.attachLo = g.cookie = g.innerLen = 0x7777;
}
function isSentinel(g: GeneveInfo): boolean {
  return [g.headerLen, g.protocol, g.vni, g.eniHi, g.eniLo, g.attachHi, g.attachLo, g.cookie, g.innerLen].every((x) => x === 0x7777);
}

// ---- corpus files -----------------------------------------------------------------------------------

/** One case as a corpus file: a comment line with its signature, then the bytes in hex. */
export function formatCase(bytes: Uint8Array, r: CaseResult): string {
  return `# ${r.signature}\n${Buffer.from(bytes).toString('hex')}\n`;
}

export function parseCase(text: string): { signature: string; bytes: Uint8Array } {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const sig = lines.find((l) => l.startsWith('#'));
  const hex = lines.filter((l) => !l.startsWith('#')).join('');
  if (sig === undefined || !/^([0-9a-f]{2})*$/.test(hex)) throw new Error('not a corpus file');
  return { signature: sig.slice(1).trim(), bytes: new Uint8Array(Buffer.from(hex, 'hex')) };
}

/** File name for a signature: stable, filesystem-safe. */
export function caseFileName(signature: string): string {
  return signature.replace(/\+/g, 'p').replace(/[^A-Za-z0-9_]+/g, '-') + '.hex';
}
