// examples/hooks/passthrough.sh end to end: the real daemon with the hook as its create and
// destroy hook, the GWLB emulator on the other side. The hook redirects every packet from
// gwi-<X> to gwo-<X> with tc before the IP stack sees it, so every packet must come back byte for
// byte unchanged: the emulator runs with --ttl-decrement 0 (one forwarding hop would fail every
// packet) while IPv4 forwarding stays off in the appliance namespace.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointNames } from '../../src/wire/eni';
import { nsRun, runEmulator, stopDaemon, useEnv, waitFor, links } from './lib';
import { assertAllVerified, nsOk, PASSTHROUGH_HOOK } from './fixtures/hooks-lib';

const ENIS = ['1', '0123456789abcdef', 'ffffffffffffffff'];

describe('passthrough hook: tc mirred from gwi- to gwo-, no routing', () => {
  const ctx = useEnv('hpt', { args: ['-c', PASSTHROUGH_HOOK, '-r', PASSTHROUGH_HOOK, '--logging', 'core=info'] });
  before(() => {
    // A new namespace starts with forwarding off; say so explicitly, since the point is that the
    // hook does not need it (it runs when the first packet arrives, after this).
    nsOk(ctx.t.applianceNs, 'sh', ['-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward && echo 0 > /proc/sys/net/ipv6/conf/all/forwarding']);
  });

  test('IPv4 and IPv6 TCP, UDP and ICMP on three endpoints come back unchanged (TTL too)', async () => {
    const r = await runEmulator(ctx.t, [
      '--endpoints', ENIS.join(','),
      '--families', '4,6',
      '--protos', 'tcp,udp,icmp',
      '--flows', '2',
      '--packets', '20',
      '--rate', '3000',
      '--size', '400',
      '--ttl-decrement', '0',
      '--settle-ms', '1500',
    ]);
    assert.equal(r.endpoints.length, 3);
    assertAllVerified(r, 'passthrough');
    // Not routed: forwarding is still off, so the kernel could not have forwarded a single packet.
    assert.equal(nsOk(ctx.t.applianceNs, 'cat', ['/proc/sys/net/ipv4/ip_forward']).trim(), '0');
    assert.match(ctx.d.output(), /passthrough: gwi-1 -> gwo-1 \((matchall|u32) \+ mirred\)/);
  });

  test('each gwi- carries exactly one redirect filter to its own gwo-, also after a second CREATE', async () => {
    const ns = ctx.t.applianceNs;
    const names = endpointNames(BigInt('0x' + ENIS[1]));
    // Run CREATE again by hand on a live endpoint: the hook must not stack a second filter.
    const again = nsRun(ns, PASSTHROUGH_HOOK, ['CREATE', names.gwi, names.gwo, names.hex]);
    assert.equal(again.status, 0, again.stderr);
    for (const eni of ENIS) {
      const nm = endpointNames(BigInt('0x' + eni));
      const f = nsOk(ns, 'tc', ['filter', 'show', 'dev', nm.gwi, 'ingress']);
      const redirects = f.split('\n').filter((l) => l.includes('mirred (Egress Redirect to device'));
      assert.equal(redirects.length, 1, `${nm.gwi}: one redirect:\n${f}`);
      assert.ok(redirects[0].includes(`device ${nm.gwo})`), `${nm.gwi} redirects to ${nm.gwo}:\n${f}`);
    }
    const r = await runEmulator(ctx.t, ['--endpoints', ENIS[1], '--families', '4,6', '--protos', 'udp', '--flows', '2', '--packets', '20', '--rate', '3000', '--ttl-decrement', '0']);
    assertAllVerified(r, 'after second CREATE');
  });

  test('DESTROY removes the filter; with it gone nothing passes any more', async () => {
    const ns = ctx.t.applianceNs;
    const nm = endpointNames(BigInt('0x' + ENIS[2]));
    const r = nsRun(ns, PASSTHROUGH_HOOK, ['DESTROY', nm.gwi, nm.gwo, nm.hex]);
    assert.equal(r.status, 0, r.stderr);
    const q = nsRun(ns, 'tc', ['qdisc', 'show', 'dev', nm.gwi, 'ingress']);
    assert.equal(q.stdout.trim(), '', `no ingress qdisc left on ${nm.gwi}: ${q.stdout}`);
    const rep = await runEmulator(ctx.t, ['--endpoints', ENIS[2], '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '10', '--rate', '2000', '--ttl-decrement', '0', '--settle-ms', '300']);
    assert.equal(rep.endpoints[0].verified, 0, 'nothing comes back once the redirect is gone');
    // A second DESTROY (and one for an interface that does not exist) still succeeds.
    assert.equal(nsRun(ns, PASSTHROUGH_HOOK, ['DESTROY', nm.gwi, nm.gwo, nm.hex]).status, 0);
    assert.equal(nsRun(ns, PASSTHROUGH_HOOK, ['DESTROY', 'gwi-nothere', 'gwo-nothere', '00000000000000abc']).status, 0);
  });

  test('after shutdown the endpoints and their filters are gone', async () => {
    const r = await stopDaemon(ctx.d);
    assert.equal(r.code, 0);
    await waitFor('interfaces gone', () => !links(ctx.t.applianceNs).some((l) => l.ifname.startsWith('gw')), 5000);
  });
});
