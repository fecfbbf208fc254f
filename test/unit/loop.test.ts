// The packet loop (src/dataplane/loop.ts) over the in-memory addon (src/testkit/fake.ts): no root, no
// threads, no devices. The main thread's part (opening queues, 'add', 'reject', 'remove') is
// played by the test.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { C } from '../../src/dataplane/counters';
import type { WorkerConfig } from '../../src/dataplane/messages';
import { LocalEndpoints, ST_PENDING, ST_READY } from '../../src/dataplane/endpoints';
import { HoldRing } from '../../src/dataplane/hold';
import { EAGAIN } from '../../src/io/constants';
import { buildInnerPacket, concatBytes } from '../../src/testkit/build';
import { writeGeneveHeader } from '../../src/wire/geneve';
import { endpointNames } from '../../src/wire/eni';
import { Drop } from '../../src/wire/reasons';

import { GWLB, LoopRig } from './helpers/loop-rig';

const MAX_EP = 8;

function geneve(eni: bigint, cookie: number, inner: Uint8Array): { header: Uint8Array; datagram: Uint8Array } {
  const header = new Uint8Array(64);
  const n = writeGeneveHeader(header, 0, { protocol: (inner[0] >> 4) === 6 ? 0x86dd : 0x0800, eni, attachment: 0x77n, cookie });
  return { header: header.slice(0, n), datagram: concatBytes(header.subarray(0, n), inner) };
}

function udpInner(sport: number, dport: number, payload = 'hello', src = '192.0.2.1', dst = '198.51.100.1'): Uint8Array {
  return buildInnerPacket({ family: src.includes(':') ? 6 : 4, proto: 17, src, dst, srcPort: sport, dstPort: dport, payload: new TextEncoder().encode(payload) });
}

/** A loop over the fake addon, with the main thread's side played by the test. */
class Rig extends LoopRig {
  constructor(over: Partial<WorkerConfig> = {}) {
    super(MAX_EP, () => over);
  }

  /** What the main thread does once an endpoint's CREATE hook has run. */
  addEndpoint(eni: bigint, slot: number, gen = 1): { gwi: number; gwo: number; epId: number } {
    const names = endpointNames(eni);
    const gwi = this.nat.tunOpen(names.gwi);
    const gwo = this.nat.tunOpen(names.gwo);
    const epId = (slot | (gen << 16)) >>> 0;
    this.control({ t: 'add', hi: Number(eni >> 32n), lo: Number(eni & 0xffffffffn), slot, epId, gwi, gwo });
    return { gwi, gwo, epId };
  }
}

/** The outer IPv4/UDP header gwlbtun puts in front: 28 bytes. */
function splitReturn(d: Uint8Array): { src: string; dst: string; sport: number; dport: number; rest: Uint8Array } {
  assert.equal(d[0], 0x45, 'outer IPv4 without options');
  assert.equal(d[9], 17, 'outer UDP');
  const ip = (o: number): string => `${d[o]}.${d[o + 1]}.${d[o + 2]}.${d[o + 3]}`;
  assert.equal((d[2] << 8) | d[3], d.length, 'IPv4 total length');
  return { src: ip(12), dst: ip(16), sport: (d[20] << 8) | d[21], dport: (d[22] << 8) | d[23], rest: d.subarray(28) };
}

describe('packet loop over the fake addon', () => {
  test('a new ENI is held until its endpoint is added, then carried there and back byte for byte', () => {
    const r = new Rig();
    const inner = udpInner(1000, 2000);
    const g = geneve(0x2b8ee1d4db0c51c4n, 0xc0ffee, inner);
    r.fromGwlb(g.datagram, 10007);
    r.turns(1);
    assert.deepEqual(r.posted, [{ t: 'new', index: 0, hi: 0x2b8ee1d4, lo: 0xdb0c51c4 }]);
    assert.equal(r.loop.hold.live, 1);
    assert.equal(r.counters[C.HOLD_NOW], 1);
    r.addEndpoint(0x2b8ee1d4db0c51c4n, 3);
    r.turns();
    assert.equal(r.loop.hold.live, 0);
    assert.equal(r.counters[C.HOLD_DELIVERED], 1);
    assert.equal(r.nat.sent.length, 1);
    const back = splitReturn(r.nat.sent[0].data);
    assert.equal(r.nat.sent[0].dst, GWLB);
    assert.deepEqual([back.src, back.dst, back.sport, back.dport], ['198.18.0.2', '198.18.0.1', 10007, 6081]);
    assert.deepEqual(back.rest, g.datagram, 'Geneve header and inner packet exactly as GWLB sent them');
  });

  test('two flows on one endpoint each go back with their own header; a stray is counted as no_flow', () => {
    const r = new Rig();
    r.addEndpoint(1n, 0);
    r.turns(1);
    const a = geneve(1n, 0xa, udpInner(1111, 53));
    const b = geneve(1n, 0xb, udpInner(2222, 53));
    r.fromGwlb(a.datagram, 10001);
    r.fromGwlb(b.datagram, 10002);
    r.turns();
    const got = r.nat.sent.map((s) => splitReturn(s.data));
    assert.deepEqual(got.map((x) => x.sport), [10001, 10002]);
    assert.deepEqual(got[0].rest, a.datagram);
    assert.deepEqual(got[1].rest, b.datagram);
    r.nat.deliver('gwo-1', udpInner(3333, 53, 'stray'));
    r.turns();
    assert.equal(r.counters[Drop.NO_FLOW], 1);
  });

  test('same-flow runs skip the flow refresh, but never past a change of header, GWLB port or flow', () => {
    const r = new Rig();
    r.addEndpoint(1n, 0);
    r.turns(1);
    const inner = udpInner(1111, 53);
    const other = udpInner(2222, 53);
    // One batch: 4 packets with cookie 0xa, 3 with cookie 0xb, 2 from another GWLB port, then
    // two flows alternating (nothing to skip there).
    for (let i = 0; i < 4; i++) r.fromGwlb(geneve(1n, 0xa, inner).datagram, 10001);
    for (let i = 0; i < 3; i++) r.fromGwlb(geneve(1n, 0xb, inner).datagram, 10001);
    for (let i = 0; i < 2; i++) r.fromGwlb(geneve(1n, 0xb, inner).datagram, 10009);
    for (let i = 0; i < 2; i++) {
      r.fromGwlb(geneve(1n, 0xc, other).datagram, 10002);
      r.fromGwlb(geneve(1n, 0xb, inner).datagram, 10009);
    }
    r.turns();
    assert.equal(r.counters[C.UDP_RX_PACKETS], 13);
    assert.equal(r.counters[C.FLOW_INSERTS], 2);
    assert.equal(r.counters[C.FLOW_REFRESHES], 11);
    assert.equal(r.counters[C.FLOW_RUN_SKIPS], 3 + 2 + 1, 'skipped: 3 of the first run, 2 of the second, 1 of the third');
    // Every return went back with the newest header and port of its flow, as without skipping.
    const got = r.nat.sent.map((x) => splitReturn(x.data));
    assert.equal(got.length, 13);
    const want = geneve(1n, 0xb, inner).datagram;
    const wantOther = geneve(1n, 0xc, other).datagram;
    for (const g of got) {
      if (g.sport === 10002) assert.deepEqual(g.rest, wantOther);
      else assert.deepEqual([g.sport, g.rest], [10009, want]);
    }
  });

  test('one return refused by the kernel costs only itself; a full send queue drops the rest as raw_send_busy', () => {
    const r = new Rig();
    r.addEndpoint(1n, 0);
    r.turns(1);
    const flows = [1, 2, 3, 4].map((i) => geneve(1n, i, udpInner(1000 + i, 53)));
    r.nat.rawFault = (d) => (((d[20] << 8) | d[21]) === 10002 ? 1 /* EPERM */ : 0);
    flows.forEach((f, i) => r.fromGwlb(f.datagram, 10001 + i));
    r.turns();
    assert.deepEqual(r.nat.sent.map((s) => splitReturn(s.data).sport), [10001, 10003, 10004]);
    assert.equal(r.counters[Drop.RAW_SEND_ERROR], 1);
    r.nat.rawFault = (d) => (((d[20] << 8) | d[21]) === 10002 ? EAGAIN : 0);
    flows.forEach((f, i) => r.fromGwlb(f.datagram, 10001 + i));
    r.turns();
    assert.deepEqual(r.nat.sent.slice(3).map((s) => splitReturn(s.data).sport), [10001]);
    assert.equal(r.counters[Drop.RAW_SEND_BUSY], 3);
  });

  test('ENI IDs sharing their low 32 bits are told apart, and removing one keeps the other', () => {
    const r = new Rig();
    const x = 0x0000000100000005n;
    const y = 0x0000000200000005n;
    r.addEndpoint(x, 1);
    r.addEndpoint(y, 2);
    r.turns(1);
    r.fromGwlb(geneve(x, 1, udpInner(1, 9, 'x')).datagram);
    r.fromGwlb(geneve(y, 2, udpInner(2, 9, 'y')).datagram);
    r.turns();
    assert.deepEqual(r.nat.written.map((w) => w.dev), [endpointNames(x).gwi, endpointNames(y).gwi]);
    r.control({ t: 'remove', slot: 1, epId: (1 | (1 << 16)) >>> 0 });
    r.turns(1);
    assert.deepEqual(r.posted.at(-1), { t: 'removed', index: 0, epId: 0x10001 });
    r.fromGwlb(geneve(y, 2, udpInner(2, 9, 'y2')).datagram);
    r.turns();
    assert.equal(r.nat.written.at(-1)!.dev, endpointNames(y).gwi, 'the other endpoint is still found');
    r.fromGwlb(geneve(x, 1, udpInner(1, 9, 'x2')).datagram);
    r.turns(1);
    assert.deepEqual(r.posted.at(-1), { t: 'new', index: 0, hi: 1, lo: 5 }, 'the removed one is new again');
  });

  test('a deleted device is reported once as gone and no longer polled', () => {
    const r = new Rig();
    r.addEndpoint(7n, 4);
    r.turns(1);
    r.nat.deleteDevice('gwo-7');
    r.turns();
    assert.deepEqual(r.posted.filter((m) => m.t === 'gone'), [{ t: 'gone', index: 0, slot: 4, errno: 77 }]);
  });

  test('a refused ENI: its held packets and later ones are dropped under the refusal reason', () => {
    const r = new Rig();
    const d = geneve(9n, 1, udpInner(1, 2)).datagram;
    r.fromGwlb(d);
    r.fromGwlb(d);
    r.turns(1);
    r.control({ t: 'reject', hi: 0, lo: 9, failed: false });
    r.fromGwlb(d);
    r.turns();
    assert.equal(r.counters[Drop.ENDPOINT_LIMIT], 3);
    assert.equal(r.loop.hold.live, 0);
    assert.equal(r.counters[C.HOLD_NOW], 0);
  });

  test('an ENI refused as not in the endpoints file (--endpoints-only): every packet counted as endpoint_unlisted', () => {
    const r = new Rig();
    const d = geneve(9n, 1, udpInner(1, 2)).datagram;
    r.fromGwlb(d);
    r.turns(1);
    r.control({ t: 'reject', hi: 0, lo: 9, failed: false, unlisted: true });
    r.fromGwlb(d);
    r.turns();
    assert.equal(r.counters[Drop.ENDPOINT_UNLISTED], 2);
    assert.equal(r.counters[Drop.ENDPOINT_LIMIT], 0);
    assert.equal(r.loop.hold.live, 0);
  });

  test('held packets expire after the hold time', () => {
    const r = new Rig({ holdMs: 0 });
    r.fromGwlb(geneve(9n, 1, udpInner(1, 2)).datagram);
    r.turns(2);
    assert.equal(r.counters[Drop.HOLD_TIMEOUT], 1);
    assert.equal(r.loop.hold.live, 0);
  });
});

describe('hold ring', () => {
  test('wraps around its arena, keeps arrival order per owner, and never exceeds its bounds', () => {
    // A model: what is held, per owner, in order; the ring must agree after every operation.
    const op = fc.oneof(
      fc.record({ k: fc.constant('add' as const), owner: fc.integer({ min: 0, max: 3 }), len: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ k: fc.constant('release' as const), owner: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ k: fc.constant('expire' as const), age: fc.integer({ min: 0, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const held = new Int32Array(4);
        const ring = new HoldRing(held, 6, 16, 1024);
        const model: { owner: number; tag: number; t: number }[] = [];
        const src = new Uint8Array(300);
        let t = 0;
        let tag = 0;
        for (const o of ops) {
          t++;
          if (o.k === 'add') {
            src.fill(++tag & 0xff, 0, o.len);
            const ok = ring.add(src, 0, o.len, tag, 0, 0, o.owner, t);
            if (ok) model.push({ owner: o.owner, tag, t });
            else assert.ok(held[o.owner] >= 6 || model.length >= 16 || true, 'refused only at a bound');
          } else if (o.k === 'release') {
            const got: number[] = [];
            ring.release(o.owner, (buf, off, len, s) => {
              assert.ok(buf.subarray(off, off + len).every((b) => b === (s & 0xff)), 'bytes intact');
              got.push(s);
            });
            const want = model.filter((m) => m.owner === o.owner).map((m) => m.tag);
            assert.deepEqual(got, want, 'released in arrival order');
            for (let i = model.length - 1; i >= 0; i--) if (model[i].owner === o.owner) model.splice(i, 1);
          } else {
            const n = ring.expire(t, o.age);
            let cut = 0;
            while (cut < model.length && t - model[cut].t >= o.age) cut++;
            assert.equal(n, cut, 'expired from the head while old enough');
            model.splice(0, cut);
          }
          assert.equal(ring.live, model.length);
          for (let w = 0; w < 4; w++) assert.equal(held[w], model.filter((m) => m.owner === w).length);
          assert.ok(ring.live <= 16);
        }
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe('local endpoint table', () => {
  test('chains of ENI IDs with equal low bits survive removal in any order', () => {
    const eps = new LocalEndpoints(4, 4);
    const ids = [0, 1, 2, 3, 4].map((h) => eps.add(h, 42, ST_PENDING, 0));
    assert.ok(ids.every((i) => i >= 0));
    for (const h of [2, 0, 4]) eps.remove(eps.find(h, 42));
    assert.equal(eps.find(2, 42), -1);
    assert.ok(eps.find(1, 42) >= 0 && eps.find(3, 42) >= 0);
    const i = eps.add(9, 42, ST_READY, 0);
    assert.equal(eps.find(9, 42), i);
    assert.equal(eps.state[i], ST_READY);
    assert.equal(eps.used, 3);
    for (let k = 0; k < 5; k++) eps.add(100 + k, k, ST_PENDING, 0);
    assert.equal(eps.add(200, 0, ST_PENDING, 0), -1, 'bounded');
  });
});
