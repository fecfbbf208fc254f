// The inbound path (src/dataplane/inbound.ts) alone, over the in-memory addon: datagrams from
// GWLB to the endpoint's gwi- queue (held while the endpoint is made), the allow-list, drops by
// reason, and the gwo- queue read back right after the writes. The endpoint control's part is
// played by the test (it sets the endpoint table as 'add' would).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { C, EP, EP_STRIDE, GLOBAL_CELLS } from '../../src/dataplane/counters';
import { ST_PENDING, ST_READY } from '../../src/dataplane/endpoints';
import { CTRL_GWLB_IP } from '../../src/dataplane/messages';
import { Drop } from '../../src/wire/reasons';
import { ip4FromString } from '../../src/io/native';
import { ENI_HI, ENI_LO, GWLB, PartsRig, geneve, udp4 } from './helpers/parts-rig';

/** Makes the endpoint ready in the table, as EndpointControl does on 'add'; returns its entry. */
function ready(r: PartsRig, slot = 1): number {
  const m = r.addMessage(slot);
  let li = r.eps.find(ENI_HI, ENI_LO);
  if (li < 0) li = r.eps.add(ENI_HI, ENI_LO, ST_READY, 0);
  r.eps.state[li] = ST_READY;
  r.eps.slot[li] = slot;
  r.eps.epId[li] = m.epId;
  r.eps.gwi[li] = m.gwi;
  r.eps.gwo[li] = m.gwo;
  r.eps.byFd.set(m.gwi, li);
  r.eps.byFd.set(m.gwo, li);
  return li;
}

test('receive: a batch goes to gwi- in one write, and its returns are read back from gwo- at once', () => {
  const r = new PartsRig();
  ready(r);
  const inner = [udp4(1001), udp4(1002), udp4(1003, 500)];
  for (const p of inner) r.fromGwlb(geneve(p));
  r.at(1000);
  r.inbound.receive();
  const toGwi = r.nat.written.filter((w) => w.dev === 'gwi-test').map((w) => w.data);
  assert.deepEqual(toGwi, inner);
  assert.equal(r.counters[C.UDP_RX_PACKETS], 3);
  assert.equal(r.counters[C.UDP_RX_BATCHES], 1);
  assert.equal(r.counters[C.TUN_TX_PACKETS], 3);
  assert.equal(r.counters[C.FLOW_INSERTS], 3);
  assert.equal(r.ctrl[CTRL_GWLB_IP], GWLB | 0, 'the egress watch learns GWLB');
  const e = GLOBAL_CELLS + 1 * EP_STRIDE;
  assert.equal(r.counters[e + EP.RX_PACKETS], 3);
  assert.equal(r.counters[e + EP.LAST_RX_MS], 1000);
  // The fake forwards gwi- to gwo-: read back in the same receive(), queued on the device.
  assert.equal(r.counters[C.TUN_RX_PACKETS], 3);
  r.returns.flush();
  assert.equal(r.nat.sent.length, 3);
  for (let i = 0; i < 3; i++) assert.deepEqual(r.nat.sent[i].data.subarray(r.nat.sent[i].data.length - inner[i].length), inner[i]);
});

test('a datagram of an ENI not seen before: the main thread is asked, the packet held, then delivered or dropped', () => {
  for (const fate of ['deliver', 'drop'] as const) {
    const r = new PartsRig();
    r.fromGwlb(geneve(udp4(1001)));
    r.fromGwlb(geneve(udp4(1002)));
    r.inbound.receive();
    assert.deepEqual(r.posted, [{ t: 'new', index: 0, hi: ENI_HI, lo: ENI_LO }], 'asked once');
    const li = r.eps.find(ENI_HI, ENI_LO);
    assert.equal(r.eps.state[li], ST_PENDING);
    assert.equal(r.counters[C.HOLD_QUEUED], 2);
    assert.equal(r.counters[C.HOLD_NOW], 2);
    assert.equal(r.nat.written.length, 0);
    if (fate === 'deliver') {
      ready(r);
      r.inbound.release(li, true, 0);
      assert.equal(r.counters[C.HOLD_DELIVERED], 2);
      assert.equal(r.nat.written.filter((w) => w.dev === 'gwi-test').length, 2);
    } else {
      r.inbound.release(li, false, Drop.ENDPOINT_LIMIT);
      assert.equal(r.counters[Drop.ENDPOINT_LIMIT], 2);
      assert.equal(r.nat.written.length, 0);
    }
    assert.equal(r.counters[C.HOLD_NOW], 0, fate);
  }
});

test('drops by reason: source outside the allow-list, bad Geneve, inner headers cut short', () => {
  const net = ip4FromString('198.18.0.0');
  const r = new PartsRig({ allow: [net | 0, 0xffffff00 | 0] });
  ready(r);
  r.fromGwlb(geneve(udp4(1001)), ip4FromString('198.19.0.1'));
  const bad = geneve(udp4(1002));
  bad[0] = 0x40; // Geneve version 1
  r.fromGwlb(bad);
  const cut = udp4(1003).slice(0, 22); // an IPv4 UDP packet without room for its ports
  cut[3] = 22;
  r.fromGwlb(geneve(cut));
  r.fromGwlb(geneve(udp4(1004)));
  r.inbound.receive();
  assert.equal(r.counters[Drop.SOURCE_NOT_ALLOWED], 1);
  assert.equal(r.counters[Drop.INNER_TRUNCATED], 1);
  assert.equal(r.counters[Drop.GENEVE_BAD_VERSION], 1);
  assert.equal(r.nat.written.length, 1, 'only the good one');
});
