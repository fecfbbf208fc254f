// The addon's offload calls against the real kernel, inside a network namespace of their own:
// tunOpen with a virtio header, TUNSETOFFLOAD probing (a bit the kernel does not know is refused
// with EINVAL, returned, not thrown), and the UDP tunnel GSO TAP of src/io/txtap.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { native } from '../../src/io/native';

const needRoot = process.getuid?.() === 0 ? {} : { skip: 'needs root (TUN, netns)' };

test('tapOpen argument checks', () => {
  assert.throws(() => native().tapOpen('gwlbtx-x', 9), RangeError);
  assert.throws(() => native().tapOpen('gwlbtx-x', 65), RangeError);
  assert.throws(() => native().tapOpen('x'.repeat(16), 24), RangeError);
});

test('virtio-header TUN queues and the UDP tunnel GSO TAP on this kernel', needRoot, () => {
  const ns = `gwt-noff-${process.pid}`;
  const dist = path.resolve(__dirname, '..', '..', 'src', 'io');
  const script = `
    const { native } = require(${JSON.stringify(path.join(dist, 'native.js'))});
    const { applyOffloads, offloadNames } = require(${JSON.stringify(path.join(dist, 'offload.js'))});
    const n = native();
    const r = {};
    const a = n.tunOpen('gwi-vnet', true);
    const b = n.tunOpen('gwi-vnet', true);
    r.csumTso = n.tunSetOffload(a, 0x7);
    r.unknownBit = n.tunSetOffload(a, 0x8000);
    r.probed = offloadNames(applyOffloads(n, a));
    r.tunTunnel = n.tunSetOffload(a, 0x7 | 0x80);
    const t = n.tapOpen('gwlbtx-t', 24);
    r.tapTunnel = n.tunSetOffload(t, 0x7 | 0x80);
    r.tapType = require('fs').readFileSync('/sys/class/net/gwlbtx-t/type', 'utf8').trim();
    try { n.tunSetOffload(999, 1); r.badFd = 'no throw'; } catch (e) { r.badFd = e.code; }
    r.badFdRet = n.tunSetOffload(999, 1);
    for (const fd of [a, b, t]) n.close(fd);
    process.stdout.write(JSON.stringify(r));`;
  execFileSync('ip', ['netns', 'add', ns]);
  let out = '';
  try {
    out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { encoding: 'utf8', timeout: 30000, killSignal: 'SIGKILL' });
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
  const r = JSON.parse(out) as Record<string, string | number>;
  const E = os.constants.errno;
  assert.equal(r.csumTso, 0);
  assert.equal(r.unknownBit, E.EINVAL);
  assert.match(String(r.probed), /^csum tso4 tso6 tso_ecn( uso4 uso6)?$/);
  assert.equal(r.badFd, 'no throw');
  assert.equal(r.badFdRet, E.EBADF);
  assert.equal(r.tapType, '1', 'an Ethernet device');
  const [maj, min] = os.release().split('.').map(Number);
  const tunnelKernel = maj > 6 || (maj === 6 && min >= 17);
  assert.equal(r.tapTunnel, tunnelKernel ? 0 : E.EINVAL, `UDP tunnel GSO on a TAP, kernel ${os.release()}`);
  assert.equal(r.tunTunnel, r.tapTunnel, 'the same bits on a TUN');
});
