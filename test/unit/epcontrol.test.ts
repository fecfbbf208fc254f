// The endpoint control (src/dataplane/epcontrol.ts) alone, over the in-memory addon: what each
// message from the main thread does to the worker's endpoint table, its epoll set and the held
// packets, what goes back, and the refusal memory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { C } from '../../src/dataplane/counters';
import { ST_PENDING, ST_READY, ST_REJECTED } from '../../src/dataplane/endpoints';
import { REJECT_MS } from '../../src/dataplane/epcontrol';
import { Drop } from '../../src/wire/reasons';
import { ENI_HI, ENI_LO, PartsRig, geneve, udp4 } from './helpers/parts-rig';

/** Polled descriptors (the fake's epoll returns every registered one with something to read). */
function polled(r: PartsRig, fds: number[]): number[] {
  for (const name of ['gwi-test', 'gwo-test']) r.nat.deliver(name, udp4(1)); // something to read on each
  const ready = new Int32Array(16);
  const n = r.nat.epollWait(r.ep, ready, 0);
  return [...ready.subarray(0, n)].filter((fd) => fds.includes(fd)).sort();
}

test("'add': the queues are polled, the entry ready, its held packets delivered; the same 'add' again changes nothing", () => {
  const r = new PartsRig();
  r.fromGwlb(geneve(udp4(1001)));
  r.inbound.receive();
  assert.equal(r.counters[C.HOLD_NOW], 1);
  const m = r.addMessage(2);
  r.message(m);
  r.control.drain();
  const li = r.eps.find(ENI_HI, ENI_LO);
  assert.equal(r.eps.state[li], ST_READY);
  assert.deepEqual([r.eps.slot[li], r.eps.epId[li], r.eps.gwi[li], r.eps.gwo[li], r.eps.bySlot[2]], [2, m.epId, m.gwi, m.gwo, li]);
  assert.equal(r.eps.byFd.get(m.gwi), li);
  assert.equal(r.eps.byFd.get(m.gwo), li);
  assert.deepEqual(polled(r, [m.gwi, m.gwo]), [m.gwi, m.gwo].sort());
  assert.equal(r.counters[C.HOLD_DELIVERED], 1);
  assert.equal(r.nat.written.filter((w) => w.dev === 'gwi-test').length, 1);
  r.message(m);
  r.control.drain();
  assert.equal(r.counters[C.HOLD_DELIVERED], 1);
});

test("'reject': held packets dropped under the reason, the refusal remembered for REJECT_MS", () => {
  for (const failed of [false, true]) {
    const r = new PartsRig();
    r.at(5000);
    r.fromGwlb(geneve(udp4(1001)));
    r.inbound.receive();
    const li = r.eps.find(ENI_HI, ENI_LO);
    assert.equal(r.eps.state[li], ST_PENDING);
    r.message({ t: 'reject', hi: ENI_HI, lo: ENI_LO, failed });
    r.control.drain();
    assert.equal(r.eps.state[li], ST_REJECTED);
    assert.equal(r.counters[failed ? Drop.ENDPOINT_FAILED : Drop.ENDPOINT_LIMIT], 1);
    // Later packets of the ENI are dropped at once, not asked about again.
    r.fromGwlb(geneve(udp4(1002)));
    r.inbound.receive();
    assert.equal(r.counters[failed ? Drop.ENDPOINT_FAILED : Drop.ENDPOINT_LIMIT], 2);
    assert.equal(r.posted.filter((p) => p.t === 'new').length, 1);
    r.at(5000 + REJECT_MS);
    r.control.expire();
    assert.equal(r.eps.find(ENI_HI, ENI_LO), li, 'still refused at REJECT_MS');
    r.at(5001 + REJECT_MS);
    r.control.expire();
    assert.equal(r.eps.find(ENI_HI, ENI_LO), -1, 'forgotten after it');
  }
});

test("'remove': the queues leave the epoll set, the entry is forgotten, 'removed' goes back", () => {
  const r = new PartsRig();
  const m = r.addMessage(3);
  r.message(m);
  r.message({ t: 'remove', slot: 3, epId: m.epId });
  r.control.drain();
  assert.equal(r.eps.find(ENI_HI, ENI_LO), -1);
  assert.equal(r.eps.bySlot[3], -1);
  assert.equal(r.eps.byFd.size, 0);
  assert.deepEqual(polled(r, [m.gwi, m.gwo]), []);
  assert.deepEqual(r.posted, [{ t: 'removed', index: 0, epId: m.epId }]);
});

test("gone(): a failed queue leaves the epoll set and 'gone' goes to the main thread (once the endpoint is ready)", () => {
  const r = new PartsRig();
  const m = r.addMessage(1);
  r.message(m);
  r.control.drain();
  const li = r.eps.find(ENI_HI, ENI_LO);
  r.control.gone(m.gwo, li, 77);
  assert.equal(r.eps.byFd.has(m.gwo), false);
  assert.equal(r.eps.byFd.get(m.gwi), li);
  assert.deepEqual(r.posted, [{ t: 'gone', index: 0, slot: 1, errno: 77 }]);
  r.eps.state[li] = ST_PENDING;
  r.control.gone(m.gwi, li, 77);
  assert.equal(r.posted.length, 1, 'not ready: nothing to tear down');
});

test('drain() takes messages only when the sequence word moved', () => {
  const r = new PartsRig();
  const m = r.addMessage(1);
  r.inbox.push(m); // not announced
  r.control.drain();
  assert.equal(r.eps.find(ENI_HI, ENI_LO), -1);
  r.message({ t: 'remove', slot: 1, epId: m.epId });
  r.control.drain();
  assert.equal(r.inbox.length, 0, 'both taken, in order');
  assert.deepEqual(r.posted, [{ t: 'removed', index: 0, epId: m.epId }]);
  assert.equal(r.eps.find(ENI_HI, ENI_LO), -1);
});
