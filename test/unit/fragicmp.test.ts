// Fragments and ICMP errors: the pure parsers (src/wire/fragments.ts, src/wire/icmp.ts), the
// datagram table (src/flow/fragments.ts), and the lookups the worker makes with them
// (src/dataplane/related.ts) over a real flow table. Inner addresses from documentation ranges only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildInnerPacket, type InnerSpec } from '../../src/testkit/build';
import { flowKeyFromIp, KEY_WORDS } from '../../src/wire/flowkey';
import { FRAG_FIRST, FRAG_ID, FRAG_LATER, FRAG_NONE, FRAG_PORTS, FRAG_WORDS, fragmentOf } from '../../src/wire/fragments';
import { icmpErrorFlowKey, ICMP_NOT_ERROR, ICMP_QUOTE_BAD, ICMP_QUOTE_OK } from '../../src/wire/icmp';
import { DatagramTable } from '../../src/flow/fragments';
import { createFlowTableBuffer, FlowTable } from '../../src/flow/table';
import { Related, LOOKUP_BAD_QUOTE, LOOKUP_QUOTE_MISMATCH } from '../../src/dataplane/related';
import { C, blockCells } from '../../src/dataplane/counters';
import { buildIcmpError, fragmentPacket } from '../../src/sim/fragment';
import { concatBytes } from '../../src/testkit/build';
import { GeneveInfo, parseGeneve, writeGeneveHeader } from '../../src/wire/geneve';
import { endpointNames } from '../../src/wire/eni';
import { Drop } from '../../src/wire/reasons';
import { LoopRig } from './helpers/loop-rig';

const CLIENT4 = '192.0.2.10';
const SERVER4 = '198.51.100.20';
const ROUTER4 = '203.0.113.1';
const CLIENT6 = '2001:db8:1::10';
const SERVER6 = '2001:db8:2::20';
const ROUTER6 = '2001:db8:ff::1';

function udp(family: 4 | 6, sport: number, dport: number, size: number, extra: Partial<InnerSpec> = {}): Uint8Array {
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 7 + sport) & 0xff;
  return buildInnerPacket({
    family,
    proto: 17,
    src: family === 4 ? CLIENT4 : CLIENT6,
    dst: family === 4 ? SERVER4 : SERVER6,
    srcPort: sport,
    dstPort: dport,
    payload,
    ...extra,
  });
}

function keyOf(pkt: Uint8Array): Uint32Array {
  const k = new Uint32Array(KEY_WORDS);
  assert.ok(flowKeyFromIp(pkt, 0, pkt.length, k), 'flow key readable');
  return k;
}

describe('fragmentOf', () => {
  const out = new Uint32Array(FRAG_WORDS);
  for (const family of [4, 6] as const) {
    it(`IPv${family}: first fragment has id and ports, later ones id only, whole packets are not fragments`, () => {
      const whole = udp(family, 40001, 53, 1000);
      assert.equal(fragmentOf(whole, 0, whole.length, out), FRAG_NONE);
      const frags = fragmentPacket(whole, 256, family === 4 ? 0xbeef : 0x89abcdef);
      assert.ok(frags.length >= 4);
      assert.equal(fragmentOf(frags[0], 0, frags[0].length, out), FRAG_FIRST);
      assert.equal(out[FRAG_ID], family === 4 ? 0xbeef : 0x89abcdef);
      assert.equal(out[FRAG_PORTS], ((40001 << 16) | 53) >>> 0);
      for (const f of frags.slice(1)) {
        assert.equal(fragmentOf(f, 0, f.length, out), FRAG_LATER);
        assert.equal(out[FRAG_ID], family === 4 ? 0xbeef : 0x89abcdef);
        assert.equal(out[FRAG_PORTS], 0);
      }
    });
  }
  it('malformed or short input is not a fragment and never throws', () => {
    const f = fragmentPacket(udp(4, 1, 2, 100), 48, 7)[0];
    assert.equal(fragmentOf(f, 0, 19, out), FRAG_NONE);
    assert.equal(fragmentOf(f, 0, f.length - 1, out), FRAG_NONE); // total length beyond the bytes
    assert.equal(fragmentOf(f, f.length, 10, out), FRAG_NONE);
    assert.equal(fragmentOf(f, -1, 10, out), FRAG_NONE);
    const f6 = fragmentPacket(udp(6, 1, 2, 100), 48, 7)[0];
    assert.equal(fragmentOf(f6, 0, 45, out), FRAG_NONE); // fragment header cut short
    // A first fragment too short for the ports: a fragment, but no ports.
    const tiny = fragmentPacket(udp(4, 1, 2, 100), 8, 9)[0].slice(0, 22);
    tiny[3] = 22; // total length: 2 bytes of UDP header
    assert.equal(fragmentOf(tiny, 0, tiny.length, out), FRAG_FIRST);
    assert.equal(out[FRAG_PORTS], 0);
    // An atomic IPv6 fragment (offset 0, M 0) is a whole datagram.
    const atomic = udp(6, 5, 6, 20, { fragment: { offset: 0, more: false, id: 3 } });
    assert.equal(fragmentOf(atomic, 0, atomic.length, out), FRAG_NONE);
  });
});

describe('icmpErrorFlowKey', () => {
  const k = new Uint32Array(KEY_WORDS);
  const reversed = (pkt: Uint8Array): number[] => {
    const q = keyOf(pkt);
    const r = [0, q[1], q[6], q[7], q[8], q[9], q[2], q[3], q[4], q[5], ((q[10] & 0xffff) * 65536 + (q[10] >>> 16)) >>> 0];
    return r;
  };
  const cases: Array<{ name: string; pkt: () => Uint8Array; want: number; key?: () => number[] }> = [];
  for (const family of [4, 6] as const) {
    const router = family === 4 ? ROUTER4 : ROUTER6;
    const client = family === 4 ? CLIENT4 : CLIENT6;
    const orig = udp(family, 40001, 33434, 1400);
    const unreach = family === 4 ? 3 : 1;
    cases.push(
      { name: `v${family} port unreachable, 28-byte quote`, pkt: () => buildIcmpError(router, client, unreach, family === 4 ? 3 : 4, 0, orig, family === 4 ? 28 : 48), want: ICMP_QUOTE_OK, key: () => reversed(orig) },
      { name: `v${family} too big / frag needed, long quote`, pkt: () => buildIcmpError(router, client, family === 4 ? 3 : 2, family === 4 ? 4 : 0, 1280, orig, 548), want: ICMP_QUOTE_OK, key: () => reversed(orig) },
      { name: `v${family} time exceeded`, pkt: () => buildIcmpError(router, client, family === 4 ? 11 : 3, 0, 0, orig, 100), want: ICMP_QUOTE_OK, key: () => reversed(orig) },
      { name: `v${family} parameter problem`, pkt: () => buildIcmpError(router, client, family === 4 ? 12 : 4, 0, 0, orig, 100), want: ICMP_QUOTE_OK, key: () => reversed(orig) },
      { name: `v${family} quote cut inside the ports`, pkt: () => buildIcmpError(router, client, unreach, 3, 0, orig, family === 4 ? 22 : 42), want: ICMP_QUOTE_BAD },
      { name: `v${family} quote shorter than an IP header`, pkt: () => buildIcmpError(router, client, unreach, 3, 0, orig, family === 4 ? 12 : 30), want: ICMP_QUOTE_BAD },
      { name: `v${family} empty quote`, pkt: () => buildIcmpError(router, client, unreach, 3, 0, orig, 0), want: ICMP_QUOTE_BAD },
      { name: `v${family} echo request is no error`, pkt: () => buildInnerPacket({ family, proto: family === 4 ? 1 : 58, src: router, dst: client, payload: new Uint8Array(8) }), want: ICMP_NOT_ERROR },
      { name: `v${family} ICMP header cut short`, pkt: () => buildIcmpError(router, client, unreach, 3, 0, orig, 0).subarray(0, family === 4 ? 24 : 44), want: ICMP_NOT_ERROR },
    );
  }
  cases.push(
    {
      name: 'v4 quote with a wrong version',
      pkt: () => {
        const q = udp(4, 1, 2, 40).slice();
        q[0] = 0x65;
        return buildIcmpError(ROUTER4, CLIENT4, 3, 3, 0, q);
      },
      want: ICMP_QUOTE_BAD,
    },
    {
      name: 'v4 quote whose IHL runs past the quote',
      pkt: () => {
        const q = udp(4, 1, 2, 40).slice(0, 28);
        q[0] = 0x4f; // 60-byte header in a 28-byte quote
        return buildIcmpError(ROUTER4, CLIENT4, 3, 3, 0, q);
      },
      want: ICMP_QUOTE_BAD,
    },
    {
      name: 'v4 quote whose total length is below its header length',
      pkt: () => {
        const q = udp(4, 1, 2, 40).slice();
        q[2] = 0;
        q[3] = 16;
        return buildIcmpError(ROUTER4, CLIENT4, 3, 3, 0, q);
      },
      want: ICMP_QUOTE_BAD,
    },
    {
      name: 'v4 quote whose total length leaves no room for ports',
      pkt: () => {
        const q = udp(4, 1, 2, 40).slice();
        q[2] = 0;
        q[3] = 22;
        return buildIcmpError(ROUTER4, CLIENT4, 3, 3, 0, q);
      },
      want: ICMP_QUOTE_BAD,
    },
    {
      name: 'v6 quote with an extension header running past the quote',
      pkt: () => buildIcmpError(ROUTER6, CLIENT6, 1, 4, 0, udp(6, 1, 2, 200, { ipv6ExtHeaders: [{ type: 60, length: 64 }] }), 80),
      want: ICMP_QUOTE_BAD,
    },
    {
      name: 'v6 quote with an extension header before UDP',
      pkt: () => buildIcmpError(ROUTER6, CLIENT6, 1, 4, 0, udp(6, 7, 8, 200, { ipv6ExtHeaders: [{ type: 60 }] }), 120),
      want: ICMP_QUOTE_OK,
      key: () => reversed(udp(6, 7, 8, 200, { ipv6ExtHeaders: [{ type: 60 }] })),
    },
    {
      name: 'v4 ICMPv6 quoted inside ICMPv4 (family mismatch)',
      pkt: () => buildIcmpError(ROUTER4, CLIENT4, 3, 3, 0, udp(6, 1, 2, 40)),
      want: ICMP_QUOTE_BAD,
    },
    {
      name: 'v4 nested: an error quoting an error is keyed as ICMP (3-tuple), not parsed again',
      pkt: () => buildIcmpError(ROUTER4, CLIENT4, 11, 0, 0, buildIcmpError(SERVER4, ROUTER4, 3, 3, 0, udp(4, 1, 2, 40))),
      want: ICMP_QUOTE_OK,
      key: () => reversed(buildIcmpError(SERVER4, ROUTER4, 3, 3, 0, udp(4, 1, 2, 40))),
    },
    {
      name: 'v6 nested error',
      pkt: () => buildIcmpError(ROUTER6, CLIENT6, 3, 0, 0, buildIcmpError(SERVER6, ROUTER6, 1, 4, 0, udp(6, 1, 2, 40))),
      want: ICMP_QUOTE_OK,
      key: () => reversed(buildIcmpError(SERVER6, ROUTER6, 1, 4, 0, udp(6, 1, 2, 40))),
    },
    {
      name: 'v4 quote of a non-first fragment: 3-tuple',
      pkt: () => buildIcmpError(ROUTER4, CLIENT4, 11, 1, 0, fragmentPacket(udp(4, 9, 10, 300), 64, 77)[1], 28),
      want: ICMP_QUOTE_OK,
      key: () => [0, (4 << 8) | 17, 0xc000020a, 0, 0, 0, 0xc6336414, 0, 0, 0, 0].map((v, i) => (i === 2 ? 0xc6336414 : i === 6 ? 0xc000020a : v)),
    },
    {
      name: 'v6 quote of a first fragment: ports',
      pkt: () => buildIcmpError(ROUTER6, CLIENT6, 3, 1, 0, fragmentPacket(udp(6, 11, 12, 300), 64, 78)[0]),
      want: ICMP_QUOTE_OK,
      key: () => reversed(udp(6, 11, 12, 300)),
    },
    {
      name: 'v4 fragment of an ICMP error is not parsed',
      pkt: () => fragmentPacket(buildIcmpError(ROUTER4, CLIENT4, 3, 3, 0, udp(4, 1, 2, 200)), 64, 5)[0],
      want: ICMP_NOT_ERROR,
    },
  );
  for (const c of cases) {
    it(c.name, () => {
      const p = c.pkt();
      k.fill(0xa5a5a5a5);
      k[0] = 0;
      assert.equal(icmpErrorFlowKey(p, 0, p.length, k), c.want);
      if (c.key) assert.deepEqual([...k], c.key());
      // Any truncation of the packet never throws and gives a valid verdict.
      for (let n = 0; n <= p.length; n += 3) {
        const v = icmpErrorFlowKey(p, 0, n, k);
        assert.ok(v === ICMP_NOT_ERROR || v === ICMP_QUOTE_OK || v === ICMP_QUOTE_BAD);
      }
    });
  }
});

describe('DatagramTable', () => {
  const key = (n: number): Uint32Array => {
    const k = new Uint32Array(KEY_WORDS);
    k[0] = 1;
    k[1] = (4 << 8) | 17;
    k[2] = 0xc0000200 + (n & 0xff);
    k[6] = 0xc6336414;
    return k;
  };
  it('records, finds, keeps datagrams of the same address pair apart, and expires', () => {
    const t = new DatagramTable(64, 30);
    assert.equal(t.record(key(1), 100, 0x11112222, 1000), false);
    assert.equal(t.record(key(1), 101, 0x33334444, 1000), false);
    assert.equal(t.find(key(1), 100, 1010), 0x11112222);
    assert.equal(t.find(key(1), 101, 1010), 0x33334444);
    assert.equal(t.find(key(1), 102, 1010), -1);
    assert.equal(t.find(key(2), 100, 1010), -1);
    const other = key(1);
    other[0] = 2; // another endpoint
    assert.equal(t.find(other, 100, 1010), -1);
    assert.equal(t.find(key(1), 100, 1031), -1, 'expired after 30 ticks');
    assert.equal(t.record(key(1), 100, 0x55556666, 1000), false);
    assert.equal(t.find(key(1), 100, 1001), 0x55556666, 'a new first fragment with the same id wins');
  });
  it('a flood stays within the bound: oldest entries evicted and reported', () => {
    const t = new DatagramTable(1000, 30);
    assert.equal(t.capacity, 1024);
    let evicted = 0;
    for (let i = 0; i < 20000; i++) if (t.record(key(i), i, i + 1, 5000)) evicted++;
    assert.ok(evicted >= 20000 - 1024, `evictions ${evicted}`);
    assert.equal(t.live(5000), 1024);
    // Fresh entries are found after the flood.
    assert.equal(t.find(key(19999), 19999, 5000), 20000);
    // After the lifetime they count for nothing and are reused without eviction.
    assert.equal(t.record(key(7), 7, 8, 5031), false);
  });
});

describe('DatagramTable hash seed', () => {
  /** The constant the set hash used before it had a seed. */
  const SEED_A = 0x9e3779b9;
  const keyOf = (ep: number, n: number): Uint32Array => {
    const k = new Uint32Array(KEY_WORDS);
    k[0] = ep;
    k[1] = (4 << 8) | 17;
    k[2] = 0xc0000200 + (n & 0xff);
    k[6] = 0xc6336414;
    return k;
  };
  it('other seeds put datagrams in other sets; the default seed is random', () => {
    const a = new DatagramTable(1024, 30, SEED_A);
    const b = new DatagramTable(1024, 30, 0x51de5eed);
    let moved = 0;
    for (let i = 0; i < 200; i++) if (a.setOf(keyOf(1, i), i * 7) !== b.setOf(keyOf(1, i), i * 7)) moved++;
    assert.ok(moved >= 190, `${moved} of 200 datagrams in another set`);
    const seeds = new Set([0, 1, 2, 3].map(() => new DatagramTable(64).seed));
    assert.ok(seeds.size >= 3, `default seeds ${[...seeds]}`);
    assert.throws(() => new DatagramTable(64, 30, -1), RangeError);
  });
  it('datagrams crafted to share one set under a known seed evict another endpoint\'s datagram only under that seed', () => {
    const victim = keyOf(2, 1);
    const probe = new DatagramTable(1024, 30, SEED_A);
    const target = probe.setOf(victim, 4242);
    const crafted: number[] = [];
    for (let id = 0; crafted.length < 8 && id < 0x10000; id++) if (probe.setOf(keyOf(1, 9), id) === target) crafted.push(id);
    assert.equal(crafted.length, 8);
    const attack = (t: DatagramTable): { victim: number; evictions: number } => {
      t.record(victim, 4242, 0x11112222, 1000);
      let evictions = 0;
      crafted.forEach((id, i) => {
        if (t.record(keyOf(1, 9), id, 0x33334444, 1001 + i)) evictions++;
      });
      return { victim: t.find(victim, 4242, 1010), evictions };
    };
    assert.deepEqual(attack(new DatagramTable(1024, 30, SEED_A)), { victim: -1, evictions: 8 + 1 - 4 });
    const t = new DatagramTable(1024);
    assert.notEqual(t.seed, SEED_A | 0);
    assert.deepEqual(attack(t), { victim: 0x11112222, evictions: 0 });
  });
});

describe('Related: lookups of returned fragments and ICMP errors over a flow table', () => {
  const HDR = 40;
  /** A flow table with n UDP flows between one address pair, differing only in the client port;
   * flow i's stored "Geneve header" is HDR bytes of value i + 1. */
  function setup(): { related: Related; counters: Float64Array; flows: FlowTable; deliver: (pkt: Uint8Array, flow: number) => void } {
    const flows = new FlowTable(createFlowTableBuffer(1000));
    const counters = new Float64Array(blockCells(4));
    const related = new Related(flows, counters, 256);
    const hdr = new Uint8Array(HDR);
    const deliver = (pkt: Uint8Array, flow: number): void => {
      // What the worker's deliver() does with a packet from GWLB.
      const k = keyOf(pkt);
      k[0] = 7;
      hdr.fill(flow + 1);
      // (The header lives in its own buffer here; the packet's position does not matter to inbound().)
      const both = new Uint8Array(HDR + pkt.length);
      both.set(hdr, 0);
      both.set(pkt, HDR);
      if (k[10] === 0) related.inbound(both, HDR, pkt.length, k, 0, HDR, 0x0a000001, 0x0a000002, 6081, 100);
      flows.upsert(k, hdr, 0, HDR, 0x0a000001, 0x0a000002, 6081, 100);
    };
    return { related, counters, flows, deliver };
  }
  /** What the worker's returnOne() does: the header byte found for the packet, or the result < 0. */
  function back(related: Related, flows: FlowTable, pkt: Uint8Array): number {
    const buf = new Uint8Array(HDR + pkt.length);
    buf.set(pkt, HDR);
    const k = keyOf(pkt);
    k[0] = 7;
    const h = k[10] !== 0 ? flows.lookupInto(k, buf, HDR, 100) : related.lookupPortless(buf, HDR, pkt.length, k, 100);
    return h < 0 ? h : buf[HDR - h];
  }

  for (const family of [4, 6] as const) {
    it(`IPv${family}: 8 flows on one address pair, interleaved fragments, each returns with its own flow's header`, () => {
      const { related, counters, flows, deliver } = setup();
      const sent: Array<{ pkt: Uint8Array; flow: number }> = [];
      let id = 1;
      // Interleaved: fragment j of every flow's datagram, then j + 1, ...
      for (let round = 0; round < 5; round++) {
        const perFlow = [...Array(8).keys()].map((f) => fragmentPacket(udp(family, 41000 + f, 4500, 1000), 256, id++));
        for (let j = 0; j < perFlow[0].length; j++) for (let f = 0; f < 8; f++) sent.push({ pkt: perFlow[f][j], flow: f });
      }
      for (const s of sent) deliver(s.pkt, s.flow);
      for (const s of sent) assert.equal(back(related, flows, s.pkt), s.flow + 1);
      assert.equal(counters[C.FRAG_BY_DATAGRAM], sent.length);
      assert.equal(counters[C.FRAG_BY_PAIR], 0);
    });

    it(`IPv${family}: out of order: last fragment first, still its own flow's header`, () => {
      const { related, counters, flows, deliver } = setup();
      const all: Array<{ pkt: Uint8Array; flow: number }> = [];
      for (let f = 0; f < 4; f++) {
        const frags = fragmentPacket(udp(family, 42000 + f, 4500, 900), 256, 500 + f).reverse();
        for (const p of frags) all.push({ pkt: p, flow: f });
      }
      for (const s of all) deliver(s.pkt, s.flow);
      for (const s of all) assert.equal(back(related, flows, s.pkt), s.flow + 1);
      assert.equal(counters[C.FRAG_BY_PAIR], 0);
    });

    it(`IPv${family}: later fragments sent back before their first fragment even arrived: the datagram entry`, () => {
      const { related, counters, flows, deliver } = setup();
      const per = [...Array(8).keys()].map((f) => fragmentPacket(udp(family, 45000 + f, 4500, 1000), 256, 700 + f));
      // Everything but the first fragments goes in and straight back out (one batch), then the firsts.
      for (let f = 0; f < 8; f++) for (const p of per[f].slice(1)) deliver(p, f);
      for (let f = 0; f < 8; f++) for (const p of per[f].slice(1)) assert.equal(back(related, flows, p), f + 1);
      for (let f = 0; f < 8; f++) deliver(per[f][0], f);
      for (let f = 0; f < 8; f++) assert.equal(back(related, flows, per[f][0]), f + 1);
      assert.equal(counters[C.FRAG_BY_PAIR], 0);
      assert.equal(counters[C.FRAG_BY_DATAGRAM], 8 * per[0].length);
    });

    it(`IPv${family}: a later fragment of an unknown datagram falls back to the address pair`, () => {
      const { related, counters, flows, deliver } = setup();
      const frags = fragmentPacket(udp(family, 43000, 4500, 900), 256, 900);
      deliver(frags[1], 2); // only a later fragment came in: the 3-tuple entry, header 3
      const other = fragmentPacket(udp(family, 43001, 4500, 900), 256, 901);
      assert.equal(back(related, flows, other[2]), 3);
      assert.equal(counters[C.FRAG_BY_PAIR], 1);
    });

    it(`IPv${family}: ICMP errors quoting a flow's packet go back with that flow's header`, () => {
      const { related, counters, flows, deliver } = setup();
      const pkts = [0, 1, 2].map((f) => udp(family, 44000 + f, 33434, 1200));
      pkts.forEach((p, f) => deliver(p, f));
      const router = family === 4 ? ROUTER4 : ROUTER6;
      const client = family === 4 ? CLIENT4 : CLIENT6;
      assert.equal(back(related, flows, buildIcmpError(router, client, family === 4 ? 3 : 1, family === 4 ? 3 : 4, 0, pkts[1], 100)), 2);
      assert.equal(back(related, flows, buildIcmpError(router, client, family === 4 ? 3 : 2, family === 4 ? 4 : 0, 1280, pkts[2], 548)), 3);
      assert.equal(counters[C.ICMP_BY_QUOTE], 2);
      // Quoting a packet of no known flow: a miss (no_flow); a malformed quote: its own result.
      assert.equal(back(related, flows, buildIcmpError(router, client, family === 4 ? 11 : 3, 0, 0, udp(family, 1, 2, 40))), -1);
      assert.equal(back(related, flows, buildIcmpError(router, client, family === 4 ? 11 : 3, 0, 0, pkts[0], 10)), LOOKUP_BAD_QUOTE);
      // An ICMP error that GWLB itself sent keeps the header it came with (its own 3-tuple).
      const fromGwlb = buildIcmpError(router, client, family === 4 ? 3 : 1, 3, 0, pkts[0], 64);
      deliver(fromGwlb, 5);
      assert.equal(back(related, flows, fromGwlb), 6);
      assert.equal(counters[C.ICMP_BY_QUOTE], 2);
    });

    it(`IPv${family}: an ICMP error not sent to the quoted packet's source does not take that flow's header`, () => {
      const { related, counters, flows, deliver } = setup();
      const pkts = [0, 1].map((f) => udp(family, 46000 + f, 33434, 200));
      pkts.forEach((p, f) => deliver(p, f));
      const router = family === 4 ? ROUTER4 : ROUTER6;
      const client = family === 4 ? CLIENT4 : CLIENT6;
      const server = family === 4 ? SERVER4 : SERVER6;
      const type = family === 4 ? 3 : 1;
      // To the server, to the router itself, to another address of the client's network: each
      // names flow 1 by its quote but is not addressed to that packet's source.
      const other = family === 4 ? '192.0.2.11' : '2001:db8:1::11';
      for (const dst of [server, router, other]) {
        assert.equal(back(related, flows, buildIcmpError(router, dst, type, 3, 0, pkts[1], 100)), LOOKUP_QUOTE_MISMATCH, `error to ${dst}`);
      }
      // An IPv6 destination that differs from the quoted source in its last word only.
      if (family === 6) assert.equal(back(related, flows, buildIcmpError(router, '2001:db8:1::11:10', type, 3, 0, pkts[1], 100)), LOOKUP_QUOTE_MISMATCH);
      assert.equal(counters[C.ICMP_BY_QUOTE], 0);
      // The same error sent to the client goes back with flow 1's header.
      assert.equal(back(related, flows, buildIcmpError(router, client, type, 3, 0, pkts[1], 100)), 2);
      assert.equal(counters[C.ICMP_BY_QUOTE], 1);
    });
  }
});

describe('ICMP errors returned by the packet loop (fake addon)', () => {
  /** A Geneve datagram of endpoint 1 with this cookie around inner. */
  function geneve(cookie: number, inner: Uint8Array): Uint8Array {
    const header = new Uint8Array(64);
    const n = writeGeneveHeader(header, 0, { protocol: inner[0] >> 4 === 6 ? 0x86dd : 0x0800, eni: 1n, attachment: 0x77n, cookie });
    return concatBytes(header.subarray(0, n), inner);
  }
  /** The cookie of a returned datagram (after its outer IPv4/UDP header). */
  function cookieOf(d: Uint8Array): number {
    const g = new GeneveInfo();
    assert.equal(parseGeneve(d, 28, d.length - 28, g), 0);
    return g.cookie;
  }
  for (const family of [4, 6] as const) {
    it(`IPv${family}: an error to the wrong destination is dropped as icmp_quote_mismatch, the right one goes back with its flow's header`, () => {
      const r = new LoopRig(4);
      const names = endpointNames(1n);
      r.control({ t: 'add', hi: 0, lo: 1, slot: 0, epId: (0 | (1 << 16)) >>> 0, gwi: r.nat.tunOpen(names.gwi), gwo: r.nat.tunOpen(names.gwo) });
      r.turns(1);
      const flowPkt = udp(family, 47000, 33434, 100);
      r.fromGwlb(geneve(0xc0ffee, flowPkt), 10001);
      r.fromGwlb(geneve(0xbadbad, udp(family, 47001, 33434, 100)), 10002);
      r.turns();
      assert.equal(r.nat.sent.length, 2, 'both flows reflected');
      const router = family === 4 ? ROUTER4 : ROUTER6;
      const client = family === 4 ? CLIENT4 : CLIENT6;
      const server = family === 4 ? SERVER4 : SERVER6;
      // Crafted inside the appliance: to the server, quoting the first flow's packet.
      r.nat.deliver(names.gwo, buildIcmpError(router, server, family === 4 ? 3 : 1, 3, 0, flowPkt, 100));
      r.turns();
      assert.equal(r.counters[Drop.ICMP_QUOTE_MISMATCH], 1);
      assert.equal(r.counters[Drop.ICMP_QUOTE_MALFORMED] + r.counters[Drop.NO_FLOW], 0);
      assert.equal(r.nat.sent.length, 2, 'not sent with the quoted flow\'s header');
      assert.equal(r.counters[C.ICMP_BY_QUOTE], 0);
      // The genuine error, to the client: back with the first flow's cookie and GWLB port.
      r.nat.deliver(names.gwo, buildIcmpError(router, client, family === 4 ? 3 : 1, 3, 0, flowPkt, 100));
      r.turns();
      assert.equal(r.nat.sent.length, 3);
      assert.equal(cookieOf(r.nat.sent[2].data), 0xc0ffee);
      assert.equal((r.nat.sent[2].data[20] << 8) | r.nat.sent[2].data[21], 10001);
      assert.equal(r.counters[C.ICMP_BY_QUOTE], 1);
      assert.equal(r.counters[Drop.ICMP_QUOTE_MISMATCH], 1);
    });
  }
});
