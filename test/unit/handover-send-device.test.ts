// The send device of --offload on in a hand-over's state (src/control/handover.ts,
// sendDeviceProblem; src/control/workers.ts, HandedSendDevice): what the new process accepts from
// the old one before it sends through those descriptors. Anything that does not fit makes the new
// process say `fail` and exit (the old one carries on); none at all is fine (the old process had
// no send device: a kernel without the offloads, -x). The exchange itself runs end to end in
// test/e2e/handover-offload.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendDeviceProblem } from '../../src/control/handover';
import type { HandedSendDevice } from '../../src/control/workers';

const opts = { offload: true, workers: 2 };
const inRange = (fd: number): boolean => Number.isInteger(fd) && fd >= 4 && fd < 20;
const good: HandedSendDevice = { tier: 'tunnel', name: 'gwlbtx0', fds: [18, 19], mac: [2, 0, 0, 0, 0, 1], raw: false, gwlbIps: [0xc6120001, 0] };

test('a send device that fits is taken; none is fine', () => {
  assert.equal(sendDeviceProblem(good, opts, inRange), null);
  assert.equal(sendDeviceProblem({ ...good, tier: 'uso', mac: [] }, opts, inRange), null);
  assert.equal(sendDeviceProblem(null, opts, inRange), null);
  assert.equal(sendDeviceProblem(null, { ...opts, offload: false }, inRange), null);
});

test('one that does not fit is refused with a reason, never thrown', () => {
  const bad: [string, unknown, RegExp][] = [
    ['missing', undefined, /missing/],
    ['this one without --offload on', good, /--offload on, this one off/],
    ['an unknown tier', { ...good, tier: 'gso' }, /unknown tier/],
    ['a name too long', { ...good, name: 'gwlbtx0-much-too-long' }, /bad name/],
    ['a name with a slash', { ...good, name: '../x' }, /bad name/],
    ['a queue short', { ...good, fds: [18] }, /descriptors out of range/],
    ['a descriptor outside the inherited range', { ...good, fds: [18, 2] }, /descriptors out of range/],
    ['not an array', { ...good, fds: '18,19' }, /descriptors out of range/],
    ['a MAC of five bytes', { ...good, mac: [1, 2, 3, 4, 5] }, /bad MAC/],
    ['a MAC byte over 255', { ...good, mac: [1, 2, 3, 4, 5, 256] }, /bad MAC/],
    ['a MAC for USO', { ...good, tier: 'uso' }, /bad MAC/],
    ['raw not a boolean', { ...good, raw: 1 }, /bad egress state/],
    ['addresses short', { ...good, gwlbIps: [1] }, /bad egress state/],
    ['an address out of range', { ...good, gwlbIps: [-1, 0] }, /bad GWLB address/],
  ];
  for (const [what, sd, re] of bad) {
    const o = what.includes('without --offload') ? { ...opts, offload: false } : opts;
    assert.match(sendDeviceProblem(sd as HandedSendDevice, o, inRange) ?? 'accepted', re, what);
  }
});
