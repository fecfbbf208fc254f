// The constants shared by the daemon, the emulator and the tests (src/io/constants.ts,
// src/wire/sizes.ts) hold what their comments claim.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { EAGAIN, ENOBUFS, sendQueueFull } from '../../src/io/constants';
import { RX_SLOT } from '../../src/wire/sizes';
import { GENEVE_HEADER_MAX } from '../../src/wire/geneve';
import { OUTER_HEADER_LEN } from '../../src/wire/outer';
import { TOPOLOGY_MTU } from '../../src/sim/topology';

describe('src/io/constants.ts', () => {
  it('has the errno values of this platform', () => {
    assert.equal(EAGAIN, os.constants.errno.EAGAIN);
    assert.equal(EAGAIN, os.constants.errno.EWOULDBLOCK);
    assert.equal(ENOBUFS, os.constants.errno.ENOBUFS);
  });

  it('sendQueueFull is true for EAGAIN and ENOBUFS only', () => {
    assert.equal(sendQueueFull(EAGAIN), true);
    assert.equal(sendQueueFull(ENOBUFS), true);
    for (const e of [0, os.constants.errno.EINVAL, os.constants.errno.EPERM, os.constants.errno.EMSGSIZE, -EAGAIN]) {
      assert.equal(sendQueueFull(e), false, String(e));
    }
  });
});

describe('src/wire/sizes.ts', () => {
  it('RX_SLOT holds the largest GWLB datagram and the largest on the test veth, cache-line aligned', () => {
    assert.ok(RX_SLOT >= GENEVE_HEADER_MAX + 8500);
    assert.ok(RX_SLOT >= TOPOLOGY_MTU - OUTER_HEADER_LEN);
    assert.equal(RX_SLOT % 64, 0);
    assert.equal(RX_SLOT, 9216);
  });
});
