// The lab GWLB's flow table (src/lab/flows.ts): one port and one cookie per flow, the same in
// both directions; the header it stores is what GWLB sends; bounded however many flows arrive.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildInnerPacket } from '../../src/testkit/build';
import { flowKeyFromIp, KEY_WORDS } from '../../src/wire/flowkey';
import { GeneveInfo, parseGeneve } from '../../src/wire/geneve';
import { LAB_GENEVE_LEN, LabFlows } from '../../src/lab/flows';

const ENI = 0x0123456789abcdefn;
const ATT = 0xfedcba98n;

function key(fam: 4 | 6, proto: number, src: string, dst: string, sp: number, dp: number): Uint32Array {
  const k = new Uint32Array(KEY_WORDS);
  const p = buildInnerPacket({ family: fam, proto, src, dst, srcPort: sp, dstPort: dp, payload: new Uint8Array(8) });
  assert.ok(flowKeyFromIp(p, 0, p.length, k));
  return k;
}

describe('lab GWLB flow table', () => {
  it('gives both directions of a flow the same entry, port and header; other flows other ones', () => {
    const f = new LabFlows(64, ENI, ATT, 1);
    const a = f.findOrCreate(key(4, 6, '192.0.2.10', '198.51.100.10', 40000, 80), 1);
    assert.equal(f.findOrCreate(key(4, 6, '198.51.100.10', '192.0.2.10', 80, 40000), 2), a);
    assert.equal(f.find(key(4, 6, '198.51.100.10', '192.0.2.10', 80, 40000), 3), a);
    const b = f.findOrCreate(key(4, 6, '192.0.2.10', '198.51.100.10', 40001, 80), 4);
    const c = f.findOrCreate(key(6, 17, '2001:db8:1::10', '2001:db8:2::10', 40000, 7), 5);
    assert.equal(new Set([a, b, c]).size, 3);
    assert.equal(new Set([f.port[a], f.port[b], f.port[c]]).size, 3);
    assert.equal(new Set([f.cookie(a), f.cookie(b), f.cookie(c)]).size, 3);
    assert.equal(f.find(key(4, 17, '192.0.2.10', '198.51.100.10', 40000, 80), 6), -1, 'another protocol is another flow');
  });

  it('stores the Geneve header GWLB sends: ENI ID, attachment ID, the flow cookie, the inner protocol', () => {
    const f = new LabFlows(64, ENI, ATT, 7);
    for (const [fam, proto] of [[4, 0x0800], [6, 0x86dd]] as const) {
      const e = f.findOrCreate(fam === 4 ? key(4, 17, '192.0.2.10', '198.51.100.10', 1, 2) : key(6, 17, '2001:db8:1::10', '2001:db8:2::10', 1, 2), 1);
      const h = f.hdr.slice(e * LAB_GENEVE_LEN, (e + 1) * LAB_GENEVE_LEN);
      const inner = buildInnerPacket({ family: fam, proto: 17, src: fam === 4 ? '192.0.2.10' : '2001:db8:1::10', dst: fam === 4 ? '198.51.100.10' : '2001:db8:2::10', srcPort: 1, dstPort: 2, payload: new Uint8Array(4) });
      const pkt = new Uint8Array(h.length + inner.length);
      pkt.set(h);
      pkt.set(inner, h.length);
      const g = new GeneveInfo();
      assert.equal(parseGeneve(pkt, 0, pkt.length, g), 0);
      assert.equal(g.headerLen, LAB_GENEVE_LEN);
      assert.equal(g.protocol, proto);
      assert.equal((BigInt(g.eniHi) << 32n) | BigInt(g.eniLo), ENI);
      assert.equal((BigInt(g.attachHi) << 32n) | BigInt(g.attachLo), ATT);
      assert.equal(g.cookie, f.cookie(e));
      assert.equal(f.byCookie(pkt, 0), e, 'the cookie leads back to its flow');
      pkt[12] ^= 1; // another ENI ID, same cookie
      assert.equal(f.byCookie(pkt, 0), -1, 'only a byte-identical header does');
    }
  });

  it('stays within its capacity under many flows, forgetting the least recently used', () => {
    const f = new LabFlows(64, ENI, ATT, 3);
    for (let i = 0; i < 2000; i++) f.findOrCreate(key(4, 17, '192.0.2.10', '198.51.100.10', 1024 + i, 7), i);
    assert.ok(f.live <= 64);
    assert.equal(f.created, 2000);
    assert.equal(f.created - f.evicted, f.live);
    assert.ok(f.find(key(4, 17, '192.0.2.10', '198.51.100.10', 1024 + 1999, 7), 3000) >= 0, 'the newest flow is there');
  });
});
