// Offloads end to end (issue 13, docs/architecture.md "TUN offloads"): bulk TCP segment streams
// from "GWLB" through the real daemon in one-arm mode, with --offload on and off. Every inner
// packet GWLB gets back must be, byte for byte, the packet it sent (apart from the TTL/hop limit
// the forwarding took and the IPv4 header checksum that follows it), each exactly once, each flow
// in order -- whether the daemon wrote the runs to gwi- as super-packets and cut what came out of
// gwo- back into segments, or carried them packet by packet. Mixed in: runs whose last segment is
// short with PSH, a segment with a corrupt TCP checksum (never merged, returned as it came), a
// reordered pair, jumbo (8000-byte) segments, IPv4 and IPv6.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ROOT, metrics, nsRun, useEnv, waitFor } from './lib';
import { drop, mv } from './probe';
import { endpointNames } from '../../src/wire/eni';
import { ENI, exchange, matchReturns, workload } from './offload-lib';

const HOOK = path.join(ROOT, 'examples', 'hooks', 'one-arm.sh');
const names = endpointNames(ENI);

// 'on' (tier 'tunnel'): super-packets read back go whole to the UDP tunnel GSO TAP where the
// kernel has it (6.17 and later; else the next tier); tier 'uso' (GWLBTUN_NO_UDP_TUNNEL_GSO=1):
// they are cut in TypeScript and go out as UDP GSO packets through the USO device (kernels 6.2 and
// later); tier 'raw' (GWLBTUN_NO_USO=1 too): cut in TypeScript and sent through the raw socket;
// 'off': packet by packet.
// With two workers, the returns of a flow may be read by the other worker (its own TUN and TAP
// queues).
// `veth` 'off': the appliance's veth towards GWLB has the features that make the kernel finish the
// work before it switched off (ethtool -K, as a NIC without them), so that the tier is used.
// 'default' (issue 19, item 3): the veth as `ip link add type veth` makes it, which passes UDP
// (tunnel) GSO packets and partial checksums on unfinished to the GWLB namespace's socket
// (measured before: datagrams holding 44,928-byte inner packets, inner TCP checksums left as the
// pseudo-header sum); gwlbtun sees the driver and its features (src/control/egress.ts), says so
// in one log line and sends the returns through the raw socket instead.
for (const [mode, tier, workers, veth] of [
  ['on', 'tunnel', 1, 'off'],
  ['on', 'uso', 1, 'off'],
  ['on', 'raw', 1, 'off'],
  ['off', 'raw', 1, 'off'],
  ['on', 'tunnel', 2, 'off'],
  ['on', 'tunnel', 1, 'default'],
  ['on', 'uso', 1, 'default'],
  ['on', 'raw', 1, 'default'],
] as const) {
  const tunnel = tier === 'tunnel';
  const defaults = veth === 'default';
  // The tier the returns take: on a veth in its default state, the raw socket.
  const used = defaults ? 'raw' : tier;
  describe(`bulk TCP through the daemon with --offload ${mode}${mode === 'on' && tier === 'uso' ? ', cut here, sent with USO' : ''}${mode === 'on' && tier === 'raw' ? ', cut here, sent raw' : ''}${workers > 1 ? `, ${workers} workers` : ''}${defaults ? ', the veth towards GWLB in its default state' : ''}`, () => {
    const PORT = defaults ? (tunnel ? 8230 : tier === 'uso' ? 8231 : 8232) : workers > 1 ? 8216 : mode === 'off' ? 8214 : tunnel ? 8213 : tier === 'uso' ? 8215 : 8217;
    const env = useEnv(`off${mode}${tier[0]}${workers}${defaults ? 'd' : ''}`, {
      args: ['-p', String(PORT), '--offload', mode, '--udpthreads', String(workers), '-c', HOOK, '-r', HOOK],
      env: tunnel ? {} : tier === 'uso' ? { GWLBTUN_NO_UDP_TUNNEL_GSO: '1' } : { GWLBTUN_NO_UDP_TUNNEL_GSO: '1', GWLBTUN_NO_USO: '1' },
    });

    test('every returned inner packet is the one sent (TTL - 1), once, in order per flow', { timeout: 90_000 }, async () => {
      // A veth passes UDP tunnel GSO packets on whole, and partial checksums unfinished (the
      // GWLB namespace's socket would take a super-packet as one datagram, and the inner TCP
      // checksums as the kernel left them for a NIC to finish); as a NIC without tunnel offloads
      // would have it, the kernel cuts them and finishes the checksums on the way out.
      // The same for UDP GSO packets (USO tier).
      if (!defaults) {
        const k = nsRun(env.t.applianceNs, 'ethtool', ['-K', env.t.applianceIf, 'tx', 'off', 'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off', 'tx-udp-segmentation', 'off']);
        assert.equal(k.status, 0, `ethtool: ${k.stderr}`);
      }
      const runs = workload();
      // One packet first: the endpoint and its CREATE hook, so that the runs meet a ready endpoint.
      const warm = runs[0].shift()!;
      const all = [warm, ...runs.flat()];
      const first = await exchange(env, [[warm]], 1);
      assert.equal(first.length, 1, 'the first packet came back');
      const back = [...first, ...(await exchange(env, runs, all.length - 1))];
      const m = metrics(env.t, PORT);
      const matched = matchReturns(all, back);
      assert.equal(matched, all.length, `all ${all.length} packets came back (drops: ${[...m].filter(([k, v]) => k.startsWith('gwlbtun_drops_total') && v > 0).join(' ')})`);
      const coalesced = mv(m, 'gwlbtun_tun_coalesced_packets_total');
      const segmented = mv(m, 'gwlbtun_tun_segmented_packets_total');
      const usoSent = mv(m, 'gwlbtun_tun_uso_packets_total');
      if (mode === 'on' && used !== 'tunnel') assert.equal(mv(m, 'gwlbtun_tun_tunneled_packets_total'), 0, 'no tunnel GSO');
      if (defaults && tier !== 'raw') {
        const said = new RegExp(`offloads: returns to GWLB leave through ${env.t.applianceIf}: driver veth passes .* on unfinished to a local receiver \\(.*\\): super-packets are cut here and sent through the raw socket, not through gwlbtx0`);
        assert.match(env.d.output(), said, 'the fall-back to the raw socket logged');
        assert.equal(env.d.output().split('\n').filter((l) => said.test(l)).length, 1, 'in one line');
        assert.equal(mv(m, 'gwlbtun_send_device_in_use'), 0, 'the metric says so');
      } else if (mode === 'on' && tier !== 'raw') {
        assert.equal(mv(m, 'gwlbtun_send_device_in_use'), 1, 'the send device in use');
      }
      if (used === 'uso') {
        assert.ok(mv(m, 'gwlbtun_tun_superpackets_uso_total') > 0, 'super-packets went out through USO');
        assert.ok(usoSent >= coalesced * 0.9, `their segments went out in USO writes (${usoSent} of ${coalesced})`);
        assert.equal(mv(m, 'gwlbtun_tun_uso_errors_total'), 0, 'no USO write failed');
      } else assert.equal(usoSent + mv(m, 'gwlbtun_tun_superpackets_uso_total'), 0, 'no USO');
      if (mode === 'on') {
        assert.ok(coalesced > all.length / 2, `most segments went to gwi- in super-packets (${coalesced} of ${all.length})`);
        assert.ok(segmented + mv(m, 'gwlbtun_tun_tunneled_packets_total') + usoSent >= coalesced, `super-packets came back out of gwo- and were cut (${segmented})`);
      } else {
        assert.equal(coalesced + segmented, 0);
      }
      assert.equal(mv(m, 'gwlbtun_raw_packets_sent_total'), all.length, 'counted in packets');
      // Read from gwo-: those, and the kernel's IPv6 housekeeping on the new interfaces.
      assert.equal(mv(m, 'gwlbtun_tun_packets_read_total') - drop(m, 'link_local'), all.length, 'counted in packets');
      assert.equal(mv(m, 'gwlbtun_endpoint_packets_from_gwlb_total{eni="' + names.hex + '",interface="' + names.gwi + '"}'), all.length);
      const tunneled = mv(m, 'gwlbtun_tun_tunneled_packets_total');
      console.log(`--offload ${mode}: ${all.length} packets, ${coalesced} coalesced into ${mv(m, 'gwlbtun_tun_superpackets_written_total')} super-packets; back: ${segmented} cut here from ${mv(m, 'gwlbtun_tun_superpackets_read_total')}, ${tunneled} cut by the kernel from ${mv(m, 'gwlbtun_tun_superpackets_tunneled_total')}, ${usoSent} sent with USO from ${mv(m, 'gwlbtun_tun_superpackets_uso_total')}`);
    });
  });
}

// The send device's sysctls (issue 19, item 2; src/control/sysctl.ts): the kernel routes what
// gwlbtun writes to gwlbtx0 as if received there, so rp_filter 1 or 2 on it (udev applying the
// distribution's default) drops every super-packet's return in the kernel (IPReversePathFilter)
// after gwlbtun counted it as sent. gwlbtun restores 0 within a second; with --no-sysctl it leaves
// the value alone, and the drops show in gwlbtun_ip_reverse_path_filter_drops_total.
for (const [tier, keep] of [['tunnel', true], ['uso', true], ['tunnel', false]] as const) {
  describe(`--offload on (${tier} tier): rp_filter 2 written on gwlbtx0 after start${keep ? ' is restored' : ', --no-sysctl: left alone'}`, () => {
    const PORT = 8220 + (tier === 'uso' ? 1 : 0) + (keep ? 0 : 2);
    const env = useEnv(`offrp${tier[0]}${keep ? 'k' : 'n'}`, {
      args: ['-p', String(PORT), '--offload', 'on', '--udpthreads', '1', '-c', HOOK, '-r', HOOK, ...(keep ? [] : ['--no-sysctl'])],
      env: tier === 'uso' ? { GWLBTUN_NO_UDP_TUNNEL_GSO: '1' } : {},
    });

    test(keep ? 'restored within a second, counted; then every segment of bulk TCP comes back' : 'rp_filter stays 2; the returns through gwlbtx0 are dropped by the kernel, and counted', { timeout: 90_000 }, async () => {
      // So that the tier is used (on a veth in its default state gwlbtun sends raw).
      const k = nsRun(env.t.applianceNs, 'ethtool', ['-K', env.t.applianceIf, 'tx', 'off', 'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off', 'tx-udp-segmentation', 'off']);
      assert.equal(k.status, 0, `ethtool: ${k.stderr}`);
      const f = '/proc/sys/net/ipv4/conf/gwlbtx0/rp_filter';
      assert.equal(nsRun(env.t.applianceNs, 'cat', [f]).stdout.trim(), '0', 'written at start');
      // Write 2, then poll (bounded: 3 s) until it reads 0 again.
      const script = `s=$(date +%s%N); echo 2 > ${f}; i=0; while [ "$(cat ${f})" != 0 ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.01; done; echo $((($(date +%s%N) - s) / 1000000))`;
      const r = nsRun(env.t.applianceNs, 'sh', ['-c', script]);
      if (keep) {
        assert.equal(r.status, 0, `rp_filter of gwlbtx0 was not restored within 3 s: ${r.stderr}`);
        assert.ok(Number(r.stdout.trim()) < 1000, `restored after ${r.stdout.trim()} ms`);
        const logged = /send device: net\.ipv4\.conf\.gwlbtx0\.rp_filter was changed to 2 by someone else; restored 0/;
        await waitFor('the restoration logged', () => logged.test(env.d.output()), 5000, 50);
      } else {
        assert.notEqual(r.status, 0, 'left alone');
        assert.equal(nsRun(env.t.applianceNs, 'cat', [f]).stdout.trim(), '2');
      }
      const runs = workload();
      const warm = runs[0].shift()!;
      const all = [warm, ...runs.flat()];
      assert.equal((await exchange(env, [[warm]], 1)).length, 1, 'the first packet came back');
      const back = await exchange(env, runs, all.length - 1);
      const m = metrics(env.t, PORT);
      const through = mv(m, 'gwlbtun_tun_tunneled_packets_total') + mv(m, 'gwlbtun_tun_uso_packets_total');
      assert.ok(through > all.length / 2, `most returns went through gwlbtx0 (${through})`);
      const rpDrops = mv(m, 'gwlbtun_ip_reverse_path_filter_drops_total');
      if (keep) {
        assert.equal(back.length, all.length - 1, `every segment came back (reverse-path filter drops: ${rpDrops})`);
        assert.equal(mv(m, 'gwlbtun_sysctl_send_device_restored_total{setting="ipv4.rp_filter"}'), 1, 'the restoration counted');
        assert.equal(rpDrops, 0, 'nothing dropped by the reverse-path filter');
      } else {
        assert.ok(back.length < all.length - 1 - through / 2, `the returns through gwlbtx0 were lost (${back.length} of ${all.length - 1} came back)`);
        assert.ok(rpDrops > 0, 'the kernel\'s drops counted');
        assert.equal(m.get('gwlbtun_sysctl_send_device_restored_total{setting="ipv4.rp_filter"}'), undefined, 'no sysctl metrics with --no-sysctl');
      }
    });
  });
}
