// Property tests (fast-check, fixed seed) of the packet builder path end to end, the part the
// per-module tests do not cover: random inner packets of every shape (transport, IPv4 options,
// IPv6 extension chains, fragments, atomic fragments) built by buildInnerPacket, wrapped by
// writeGeneveHeader, accepted by parseGeneve, keyed by flowKeyFromIp, stored in and found again
// (in the other direction) by the flow table; and the emulator's FlowPlan templates for random
// plan shapes and flow offsets.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildInnerPacket, formatIp, type InnerSpec } from '../../src/testkit/build';
import { GeneveInfo, makeGeneveOption, parseGeneve, writeGeneveHeader } from '../../src/wire/geneve';
import { flowKeyFromIp, KEY_WORDS } from '../../src/wire/flowkey';
import { internetChecksum } from '../../src/testkit/checksum';
import { OUTER_HEADER_LEN } from '../../src/wire/outer';
import { createFlowTableBuffer, FlowTable, UPSERT_HEADER_TOO_LONG } from '../../src/flow/table';
import { FlowPlan, type SimFamily, type SimProto } from '../../src/sim/flows';
import { eniFromHalves } from '../../src/wire/eni';

const ext = fc.constantFrom(0, 43, 60, 135, 139, 140, 51);
const spec = fc.record({
  v6: fc.boolean(),
  proto: fc.oneof(fc.constantFrom(6, 17, 1, 58, 47, 50, 59, 132), fc.integer({ min: 0, max: 255 })),
  src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  sport: fc.integer({ min: 0, max: 65535 }),
  dport: fc.integer({ min: 0, max: 65535 }),
  optWords: fc.integer({ min: 0, max: 10 }),
  chain: fc.array(fc.tuple(ext, fc.integer({ min: 0, max: 3 })), { maxLength: 5 }),
  frag: fc.option(fc.record({ offset: fc.integer({ min: 0, max: 0x1fff }), more: fc.boolean(), id: fc.integer({ min: 0, max: 0xffff }) }), { nil: undefined }),
  payload: fc.uint8Array({ maxLength: 64 }),
  eni: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  cookie: fc.integer({ min: 0, max: 0xffffffff }),
  unknownOpts: fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 4, max: 255 }), fc.integer({ min: 0, max: 6 })), { maxLength: 3 }),
});
type Spec = typeof spec extends fc.Arbitrary<infer T> ? T : never;

const EXT_HEADER_PROTOS = new Set([0, 43, 44, 51, 60, 135, 139, 140]);

function innerSpec(s: Spec, reverse = false): InnerSpec {
  const fam = s.v6 ? 6 : 4;
  // A transport number that is itself an extension header type would make buildInnerPacket's
  // packet walk differently; the flow key tests cover those.
  const proto = s.v6 && EXT_HEADER_PROTOS.has(s.proto) ? 17 : s.proto;
  const a = formatIp(s.src.subarray(0, s.v6 ? 16 : 4));
  const b = formatIp(s.dst.subarray(0, s.v6 ? 16 : 4));
  return {
    family: fam, proto, src: reverse ? b : a, dst: reverse ? a : b,
    srcPort: reverse ? s.dport : s.sport, dstPort: reverse ? s.sport : s.dport,
    payload: s.payload,
    ipv4Options: s.v6 ? undefined : new Uint8Array(s.optWords * 4).fill(1),
    ipv6ExtHeaders: s.v6 ? s.chain.map(([type, n]) => ({ type, length: type === 51 ? 12 + 4 * n : 8 + 8 * n })) : undefined,
    fragment: s.frag,
  };
}

function key(p: Uint8Array, off = 0, len = p.length - off): Uint32Array | null {
  const k = new Uint32Array(KEY_WORDS);
  return flowKeyFromIp(p, off, len, k) ? k : null;
}

/** Does the packet count as a fragment (keyed without ports)? IPv6 atomic fragments do not. */
function isFragment(s: Spec): boolean {
  return s.frag !== undefined && (s.frag.offset !== 0 || s.frag.more);
}

describe('builder path properties (fast-check, seed 42)', () => {
  it('built packets: consistent lengths, valid IPv4 header checksum, accepted by parseGeneve, keyed as specified', () => {
    fc.assert(
      fc.property(spec, (s) => {
        const is = innerSpec(s);
        const inner = buildInnerPacket(is);
        if (s.v6) assert.equal((inner[4] << 8) | inner[5], inner.length - 40);
        else {
          assert.equal((inner[2] << 8) | inner[3], inner.length);
          assert.equal((inner[0] & 15) * 4, 20 + s.optWords * 4);
          assert.equal(internetChecksum(inner, 0, 20 + s.optWords * 4, 0), 0, 'IPv4 header checksum');
        }
        const extra = s.unknownOpts.map(([cls, type, words]) => makeGeneveOption(cls === 0x0108 ? 0x0109 : cls, type, new Uint8Array(words * 4)));
        const extraBytes = new Uint8Array(extra.reduce((a, o) => a + o.length, 0));
        extra.reduce((at, o) => (extraBytes.set(o, at), at + o.length), 0);
        const hdr = new Uint8Array(260);
        const hl = writeGeneveHeader(hdr, 0, { protocol: s.v6 ? 0x86dd : 0x0800, eni: s.eni, attachment: 7n, cookie: s.cookie, extraOptions: extraBytes });
        const pkt = new Uint8Array(hl + inner.length);
        pkt.set(hdr.subarray(0, hl));
        pkt.set(inner, hl);
        const gi = new GeneveInfo();
        assert.equal(parseGeneve(pkt, 0, pkt.length, gi), 0);
        assert.equal(gi.headerLen, hl);
        assert.equal(gi.innerLen, inner.length);
        assert.equal(eniFromHalves(gi.eniHi, gi.eniLo), s.eni);
        assert.equal(gi.cookie, s.cookie);
        const k = key(pkt, gi.headerLen, gi.innerLen);
        assert.ok(k !== null, 'a built packet always has a key (the builder writes whole transport headers)');
        // Ports only for TCP/UDP that is not a fragment (an IPv6 atomic fragment is not one).
        const ported = (is.proto === 6 || is.proto === 17) && !isFragment(s);
        assert.equal(k[1], ((s.v6 ? 6 : 4) << 8) | is.proto);
        if (ported) assert.equal(k[10], ((s.sport << 16) | s.dport) >>> 0);
        else assert.equal(k[10], 0);
      }),
      { seed: 42, numRuns: 1500 },
    );
  });

  it('the reverse packet keys to the swapped key, and the flow table finds the forward flow with it', () => {
    const table = new FlowTable(createFlowTableBuffer(64));
    fc.assert(
      fc.property(spec, fc.integer({ min: 1, max: 0xffff }), (s, ep) => {
        const fwd = buildInnerPacket(innerSpec(s));
        const rev = buildInnerPacket(innerSpec(s, true));
        const kf = key(fwd);
        const kr = key(rev);
        if (kf === null || kr === null) {
          assert.equal(kf, kr, 'both directions keyable or neither');
          return;
        }
        const w = KEY_WORDS;
        assert.equal(kr[1], kf[1]);
        assert.deepEqual([...kr.subarray(2, 6)], [...kf.subarray(6, 10)]);
        assert.deepEqual([...kr.subarray(6, 10)], [...kf.subarray(2, 6)]);
        assert.equal(kr[w - 1], ((kf[w - 1] << 16) | (kf[w - 1] >>> 16)) >>> 0);
        kf[0] = ep;
        kr[0] = ep;
        const hdr = new Uint8Array(40);
        writeGeneveHeader(hdr, 0, { protocol: s.v6 ? 0x86dd : 0x0800, eni: s.eni, attachment: 1n, cookie: s.cookie });
        assert.notEqual(table.upsert(kf, hdr, 0, 40, 0xc6120001, 0xc6120002, s.sport, 5), UPSERT_HEADER_TOO_LONG);
        const out = new Uint8Array(64);
        assert.equal(table.lookupInto(kr, out, 64, 5), 40);
        assert.deepEqual(out.subarray(24, 64), hdr);
        assert.equal(table.hitGwlbPort, s.sport);
      }),
      { seed: 42, numRuns: 1500 },
    );
  });

  it('every fragment of a datagram (first, middle, last) has the key of the first', () => {
    fc.assert(
      fc.property(spec, fc.integer({ min: 1, max: 0x1ffe }), (s, mid) => {
        const first = key(buildInnerPacket(innerSpec({ ...s, frag: { offset: 0, more: true, id: 9 } })));
        const middle = key(buildInnerPacket(innerSpec({ ...s, frag: { offset: mid, more: true, id: 9 } })));
        const last = key(buildInnerPacket(innerSpec({ ...s, frag: { offset: mid + 1, more: false, id: 9 } })));
        assert.ok(first !== null && middle !== null && last !== null);
        assert.deepEqual([...middle], [...first]);
        assert.deepEqual([...last], [...first]);
        assert.equal(first[10], 0);
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});

describe('emulator flow plans (fast-check, seed 42)', () => {
  const shape = fc.record({
    endpoints: fc.uniqueArray(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 1, maxLength: 3, selector: (x) => String(x) }),
    families: fc.subarray([4, 6] as SimFamily[], { minLength: 1 }),
    protos: fc.subarray(['tcp', 'udp', 'icmp'] as SimProto[], { minLength: 1 }),
    flows: fc.integer({ min: 1, max: 4 }),
    innerSize: fc.integer({ min: 0, max: 1500 }),
    offset: fc.integer({ min: 0, max: 200_000 }),
    ttl: fc.integer({ min: 0, max: 2 }),
  });

  it('every template: valid outer IPv4/UDP, its flow\'s Geneve header, a flow key no other flow has', () => {
    fc.assert(
      fc.property(shape, (sh) => {
        const p = new FlowPlan({
          gwlbIp: '198.18.0.1', applianceIp: '198.18.0.2', endpoints: sh.endpoints, flowsPerKind: sh.flows,
          families: sh.families, protos: sh.protos, innerSize: sh.innerSize, ttlDecrement: sh.ttl, flowOffset: sh.offset,
        });
        const keys = new Set<string>();
        const gi = new GeneveInfo();
        for (let f = 0; f < p.count; f++) {
          const pkt = p.outboundPacket(f, f * 3);
          assert.equal(internetChecksum(pkt, 0, 20, 0), 0, 'outer IPv4 checksum');
          assert.equal((pkt[24] << 8) | pkt[25], pkt.length - 20, 'UDP length');
          assert.equal(parseGeneve(pkt, OUTER_HEADER_LEN, pkt.length - OUTER_HEADER_LEN, gi), 0);
          assert.equal(eniFromHalves(gi.eniHi, gi.eniLo), sh.endpoints[p.ep[f]]);
          assert.equal(gi.cookie, p.cookie[f]);
          const k = key(pkt, OUTER_HEADER_LEN + gi.headerLen, gi.innerLen);
          assert.ok(k !== null);
          k[0] = p.ep[f];
          // Canonical (direction-free) form: the appliance would merge two flows sharing it.
          const a = [...k.subarray(2, 6)].join(',');
          const b = [...k.subarray(6, 10)].join(',');
          const canon = `${k[0]}|${k[1]}|${[a, b].sort().join('|')}|${[k[10] >>> 16, k[10] & 0xffff].sort().join(',')}`;
          assert.ok(!keys.has(canon), `flow ${f} shares its key`);
          keys.add(canon);
          // The expected return is the same bytes after ttl hops (hop limit / TTL, IPv4 checksum).
          const exp = p.expectedReturn(f, f * 3);
          assert.equal(exp.length, pkt.length - OUTER_HEADER_LEN);
          assert.equal(exp[gi.headerLen + (p.family[f] === 4 ? 8 : 7)], 64 - sh.ttl);
        }
      }),
      { seed: 42, numRuns: 150 },
    );
  });
});
