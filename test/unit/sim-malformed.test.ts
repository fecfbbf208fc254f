// The emulator's malformed catalogue and its scheduling, on bytes (no sockets): every variant of
// every kind is rejected by parseGeneve with exactly the reason the kind declares, carries an ENI
// ID no good flow uses, and the sender interleaves them as asked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MALFORMED_ALL, MALFORMED_KINDS, malformedEni, malformedIndex, RANDOM_ENI_KIND } from '../../src/sim/malformed';
import { Extras, Sender, resolveOptions } from '../../src/sim/emulator';
import { FlowPlan } from '../../src/sim/flows';
import { parseEmulateArgs } from '../../src/sim/cli';
import { GeneveInfo, parseGeneve } from '../../src/wire/geneve';
import { DROP_NAMES } from '../../src/wire/reasons';
import { flowKeyFromIp, KEY_WORDS } from '../../src/wire/flowkey';
import { OUTER_HEADER_LEN } from '../../src/wire/outer';
import { eniFromHalves } from '../../src/wire/eni';

const EP = [1n, 0x0bad000000000001n]; // the second collides with kind 0's default ENI on purpose

function reasonOf(payload: Uint8Array): string {
  const r = parseGeneve(payload, 0, payload.length, new GeneveInfo());
  return r === 0 ? 'accepted' : DROP_NAMES[r];
}

test('the catalogue covers every Geneve and inner-header rejection the issue lists', () => {
  const names = MALFORMED_KINDS.map((k) => k.name);
  for (const n of [
    'too_short', 'bad_version', 'bad_protocol', 'options_overrun', 'option_overrun',
    'missing_eni', 'missing_attachment', 'missing_cookie',
    'bad_eni_length', 'bad_attachment_length', 'bad_cookie_length', 'duplicate_option',
    'inner_version_mismatch', 'inner_truncated_v4', 'inner_truncated_v6', 'inner_empty',
  ]) assert.ok(names.includes(n), n);
  assert.equal(new Set(names).size, names.length);
  // Every Geneve-level drop reason (1..15) is the reason of some kind in 'all'.
  const reasons = new Set(MALFORMED_ALL.map((n) => MALFORMED_KINDS[malformedIndex(n)].reason));
  for (let r = 1; r <= 15; r++) assert.ok(reasons.has(DROP_NAMES[r]), DROP_NAMES[r]);
});

test('every variant of every kind is rejected with exactly its declared reason', () => {
  for (const [i, k] of MALFORMED_KINDS.entries()) {
    const eni = malformedEni(i, EP);
    const variants = k.build(eni, 0x1234n);
    assert.ok(variants.length >= 1, k.name);
    for (const [j, v] of variants.entries()) {
      if (k.name === 'inner_ports_truncated') continue; // below
      assert.equal(reasonOf(v), k.reason, `${k.name} variant ${j}`);
    }
  }
});

test('inner_ports_truncated passes Geneve validation and fails only the flow key', () => {
  const k = MALFORMED_KINDS[malformedIndex('inner_ports_truncated')];
  for (const v of k.build(malformedEni(0, []), 1n)) {
    const gi = new GeneveInfo();
    assert.equal(parseGeneve(v, 0, v.length, gi), 0);
    assert.equal(flowKeyFromIp(v, gi.headerLen, gi.innerLen, new Uint32Array(KEY_WORDS)), false);
  }
  assert.ok(MALFORMED_ALL.includes('inner_ports_truncated'), '"all" is every kind');
});

test('malformed ENI IDs are distinct per kind and never a good endpoint', () => {
  const enis = MALFORMED_KINDS.map((_, i) => malformedEni(i, EP));
  assert.equal(new Set(enis.map(String)).size, enis.length);
  for (const e of enis) assert.ok(!EP.includes(e));
  // Where a variant carries an ENI option, it carries that ID.
  for (const [i, k] of MALFORMED_KINDS.entries()) {
    for (const v of k.build(enis[i], 7n)) {
      for (let p = 8; p + 12 <= v.length; p += 4) {
        if (v[p] === 0x01 && v[p + 1] === 0x08 && v[p + 2] === 1 && (v[p + 3] & 0x1f) === 2) {
          const dv = new DataView(v.buffer, v.byteOffset + p + 4, 8);
          assert.equal(dv.getBigUint64(0), enis[i], k.name);
        }
      }
    }
  }
});

function plan(): FlowPlan {
  return new FlowPlan({
    gwlbIp: '198.18.0.1', applianceIp: '198.18.0.2', endpoints: EP, flowsPerKind: 1,
    families: [4], protos: ['udp'], innerSize: 100, ttlDecrement: 1, attachments: [1n, 2n],
  });
}

test('sender: one malformed packet after every N good ones, cycling kinds and variants, on ports no flow uses', () => {
  const p = plan();
  const kinds = ['bad_version', 'missing_cookie', 'inner_empty'];
  const x = new Extras(p, kinds, 3, 0);
  const s = new Sender(p, new Float64Array(p.count), 64, p.applianceIp, x);
  const good = s.fill(64);
  assert.equal(s.pending, 64);
  const seen: string[] = [];
  let g = 0;
  for (let i = 0; i < 64; i++) {
    const f = s.slotFlow[i];
    const off = s.meta[i * 3];
    const len = s.meta[i * 3 + 1];
    const port = (s.buf[off + 20] << 8) | s.buf[off + 21];
    const payload = s.buf.subarray(off + OUTER_HEADER_LEN, off + len);
    if (f >= 0) {
      g++;
      assert.equal(reasonOf(payload), 'accepted');
      assert.equal(p.flowOfPort(port), f);
    } else {
      const k = -1 - f;
      seen.push(kinds[k]);
      assert.equal(reasonOf(payload), x.reasons[k]);
      assert.equal(p.flowOfPort(port), -1, 'extra packets use ports of no flow');
      assert.equal(x.portKind[port], k);
      assert.equal(g % 3, 0, 'after a multiple of 3 good packets');
    }
  }
  assert.equal(good, g);
  assert.equal(64 - g, 16); // pattern GGGM repeated
  assert.deepEqual(seen.slice(0, 6), [...kinds, ...kinds]);
  const r = x.report();
  assert.deepEqual(Object.keys(r.sent), kinds);
  assert.equal(r.reasons.missing_cookie, 'geneve_missing_cookie');
  assert.equal(r.enis.bad_version, malformedEni(malformedIndex('bad_version'), EP).toString(16).padStart(17, '0'));
});

test('sender: random ENI packets come first, are valid, each with a new ENI ID', () => {
  const p = plan();
  const x = new Extras(p, [], 10, 100);
  const s = new Sender(p, new Float64Array(p.count), 32, p.applianceIp, x);
  const enis = new Set<string>();
  let goodTotal = 0;
  for (let round = 0; round < 5; round++) {
    goodTotal += s.fill(32);
    for (let i = 0; i < 32; i++) {
      const f = s.slotFlow[i];
      const off = s.meta[i * 3];
      const payload = s.buf.subarray(off + OUTER_HEADER_LEN, off + s.meta[i * 3 + 1]);
      const gi = new GeneveInfo();
      assert.equal(parseGeneve(payload, 0, payload.length, gi), 0);
      if (f < 0) {
        assert.equal(x.names[-1 - f], RANDOM_ENI_KIND);
        const eni = eniFromHalves(gi.eniHi, gi.eniLo);
        assert.ok(!EP.includes(eni));
        enis.add(String(eni));
        assert.ok(flowKeyFromIp(payload, gi.headerLen, gi.innerLen, new Uint32Array(KEY_WORDS)));
      }
    }
  }
  assert.equal(enis.size, 100);
  assert.equal(goodTotal, 160 - 100);
  assert.equal(x.randomLeft, 0);
});

test('options and CLI: --malformed all / names, --malformed-every, --random-enis, --flow-offset', () => {
  const o = parseEmulateArgs(['--malformed', 'all', '--malformed-every', '7', '--random-enis', '5', '--flow-offset', '1000']);
  assert.deepEqual(o.malformed, [...MALFORMED_ALL]);
  assert.equal(o.malformedEvery, 7);
  assert.equal(o.randomEnis, 5);
  assert.equal(o.flowOffset, 1000);
  assert.deepEqual(parseEmulateArgs(['--malformed', 'too_short,inner_ports_truncated,too_short']).malformed, ['too_short', 'inner_ports_truncated']);
  assert.throws(() => parseEmulateArgs(['--malformed', 'bogus']));
  assert.throws(() => parseEmulateArgs(['--malformed-every', '0']));
  assert.throws(() => resolveOptions({ malformed: ['nope'] }), RangeError);
  assert.throws(() => resolveOptions({ malformedEvery: 0 }), RangeError);
  // Without the new options nothing changes.
  const plain = parseEmulateArgs([]);
  assert.equal(plain.malformed, undefined);
  assert.equal(plain.randomEnis, undefined);
});

test('flow offset: different offsets give disjoint 5-tuples, same ports', () => {
  const base = { gwlbIp: '198.18.0.1', applianceIp: '198.18.0.2', endpoints: [1n, 2n], flowsPerKind: 5, families: [4, 6] as (4 | 6)[], protos: ['tcp', 'udp', 'icmp'] as ('tcp' | 'udp' | 'icmp')[], innerSize: 100, ttlDecrement: 1 };
  const a = new FlowPlan(base);
  const b = new FlowPlan({ ...base, flowOffset: a.count });
  const pairs = (q: FlowPlan): string[] => Array.from({ length: q.count }, (_, f) => `${q.src[f]} ${q.dst[f]}`);
  const pa = new Set(pairs(a));
  assert.equal(pa.size, a.count);
  for (const x of pairs(b)) assert.ok(!pa.has(x), x);
  assert.deepEqual([...a.port], [...b.port]);
});
