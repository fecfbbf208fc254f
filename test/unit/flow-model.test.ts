// Model-based property test of the flow table: random sequences of upserts (either direction),
// lookups (either direction) and full sweeps against a Map, within capacity (40 distinct flows in a
// table for 400), so the table must behave exactly like the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  createFlowTableBuffer,
  FlowTable,
  UPSERT_HEADER_TOO_LONG,
  UPSERT_INSERTED,
  UPSERT_REFRESHED,
} from '../../src/flow/table';

const FLOWS = 40;

/** Flow i of the pool, forward or reversed. Distinct i are distinct flows. Groups of four share
 * their addresses: 0 TCP A:p -> B:443, 1 TCP A:443 -> B:p (the same ports the other way round,
 * a different flow), 2 UDP A:p -> B:443, 3 ICMP/ICMPv6 of another endpoint. IPv4 and IPv6
 * groups alternate; in some groups A > B, so that canonicalisation swaps either way. */
function poolKey(i: number, reversed: boolean): Uint32Array {
  const k = new Uint32Array(11);
  const g = i >> 2;
  const r = i & 3;
  const v6 = g % 2 === 1;
  const proto = r < 2 ? 6 : r === 2 ? 17 : v6 ? 58 : 1;
  k[0] = r === 3 ? 0x80020001 : 0x00010001;
  k[1] = ((v6 ? 6 : 4) << 8) | proto;
  let a: number[];
  let b: number[];
  if (v6) {
    a = [0x20010db8, 0, 0, 0x100 + g];
    b = g % 3 === 0 ? [0x20010db8, 0, 0, 1] : [0x20010db8, 0xffff, 0, 1];
  } else {
    a = [0xc0000210 + g, 0, 0, 0];
    b = [g % 3 === 0 ? 0xc0000201 : 0xc6336401, 0, 0, 0];
  }
  let pa = r === 1 ? 443 : 1000 + g;
  let pb = r === 1 ? 1000 + g : 443;
  if (r === 3) pa = pb = 0;
  if (reversed) {
    [a, b] = [b, a];
    [pa, pb] = [pb, pa];
  }
  for (let w = 0; w < 4; w++) {
    k[2 + w] = a[w];
    k[6 + w] = b[w];
  }
  k[10] = ((pa << 16) | pb) >>> 0;
  return k;
}

interface Stored {
  hdr: Uint8Array;
  gwlb: number;
  local: number;
  port: number;
  seen: number;
  tcp: boolean;
}

type Op =
  | { t: 'up'; f: number; rev: boolean; len: number; fill: number; gwlb: number; local: number; port: number; dt: number }
  | { t: 'look'; f: number; rev: boolean; dt: number }
  | { t: 'sweep'; tcpIdle: number; otherIdle: number; dt: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('up' as const),
      f: fc.nat(FLOWS - 1),
      rev: fc.boolean(),
      len: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(40, 32, 8, 60, 0) }, { weight: 1, arbitrary: fc.integer({ min: 61, max: 64 }) }),
      fill: fc.nat(255),
      gwlb: fc.nat(0xffffffff),
      local: fc.nat(0xffffffff),
      port: fc.nat(0xffff),
      dt: fc.nat(10),
    }),
  },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('look' as const), f: fc.nat(FLOWS - 1), rev: fc.boolean(), dt: fc.nat(10) }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('sweep' as const), tcpIdle: fc.nat(60), otherIdle: fc.nat(30), dt: fc.nat(20) }),
  },
);

/** A direction-independent text form of a key (the test's own canonicalisation). */
function canonicalString(k: Uint32Array): string {
  const f = [...k];
  const r = [f[0], f[1], ...f.slice(6, 10), ...f.slice(2, 6), ((f[10] << 16) | (f[10] >>> 16)) >>> 0];
  const a = f.join(',');
  const b = r.join(',');
  return a < b ? a : b;
}

test('pool flows are distinct, and a flow equals its reverse', () => {
  const seen = new Set<string>();
  for (let i = 0; i < FLOWS; i++) {
    const s = canonicalString(poolKey(i, false));
    assert.equal(s, canonicalString(poolKey(i, true)));
    assert.ok(!seen.has(s), `flow ${i} duplicates another`);
    seen.add(s);
  }
});

test('flow table behaves like a Map model (fast-check, fixed seed)', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 300, size: 'medium' }), (ops) => {
      const t = new FlowTable(createFlowTableBuffer(400));
      const model = new Map<number, Stored>();
      const out = new Uint8Array(128);
      const src = new Uint8Array(80);
      let now = 1_000_000;
      for (const op of ops) {
        now += op.dt;
        if (op.t === 'up') {
          for (let j = 0; j < op.len; j++) src[5 + j] = (op.fill + j * 13) & 0xff;
          const r = t.upsert(poolKey(op.f, op.rev), src, 5, op.len, op.gwlb, op.local, op.port, now);
          if (op.len > 60) {
            // Not stored, and the flow's older header is gone: a return must not use it.
            assert.equal(r, UPSERT_HEADER_TOO_LONG);
            model.delete(op.f);
          } else {
            assert.equal(r, model.has(op.f) ? UPSERT_REFRESHED : UPSERT_INSERTED);
            model.set(op.f, {
              hdr: src.slice(5, 5 + op.len),
              gwlb: op.gwlb,
              local: op.local,
              port: op.port,
              seen: now,
              tcp: (op.f & 3) < 2,
            });
          }
        } else if (op.t === 'look') {
          out.fill(0xee);
          const r = t.lookupInto(poolKey(op.f, op.rev), out, 100, now);
          const m = model.get(op.f);
          if (m === undefined) {
            assert.equal(r, -1);
          } else {
            assert.equal(r, m.hdr.length);
            assert.deepEqual(out.slice(100 - r, 100), m.hdr);
            assert.equal(out[100], 0xee);
            assert.equal(t.hitGwlbIp, m.gwlb);
            assert.equal(t.hitLocalIp, m.local);
            assert.equal(t.hitGwlbPort, m.port);
            m.seen = now;
          }
        } else {
          let expect = 0;
          for (const [f, m] of model) {
            if (now - m.seen > (m.tcp ? op.tcpIdle : op.otherIdle)) {
              model.delete(f);
              expect++;
            }
          }
          assert.equal(t.sweep(now, op.tcpIdle, op.otherIdle, t.buckets, null), expect);
        }
        assert.equal(t.size(), model.size);
      }
    }),
    { seed: 42, numRuns: 300 },
  );
});
