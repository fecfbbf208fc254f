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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { nsSpawnArgs } from '../../src/sim/topology';
import { concatBytes } from '../../src/testkit/build';
import { writeGeneveHeader } from '../../src/wire/geneve';
import { ROOT, metrics, nsRun, useEnv, waitFor, type Env } from './lib';
import { drop, mv } from './probe';
import { endpointNames } from '../../src/wire/eni';
import { stream, type SegSpec } from '../../src/testkit/tcp';

const ENI = 0x0ff10ad13n;
const HOOK = path.join(ROOT, 'examples', 'hooks', 'one-arm.sh');
const names = endpointNames(ENI);

interface Sent {
  datagram: Uint8Array;
  inner: Uint8Array;
  flow: number;
}

function geneve(inner: Uint8Array, cookie: number): Uint8Array {
  const h = new Uint8Array(64);
  const n = writeGeneveHeader(h, 0, { protocol: inner[0] >> 4 === 6 ? 0x86dd : 0x0800, eni: ENI, attachment: 0x1313n, cookie });
  return concatBytes(h.subarray(0, n), inner);
}

/** Runs of segments, as TCP windows arriving: run r of every flow, flows interleaved in turns of
 * 4 segments (so that a receive batch holds several flows). */
function workload(): Sent[][] {
  const flows: { base: SegSpec; mss: number }[] = [];
  for (let f = 0; f < 12; f++) {
    const v6 = f >= 8;
    flows.push({ base: { v6, src: 10 + f, dst: 100 + (f % 3), sport: 41000 + f, dport: 443, ack: 0x1000 + f, id: 7 * f, seq: 0x10000 * f }, mss: f === 3 ? 8000 : 1448 });
  }
  const seqs = flows.map((f) => f.base.seq!);
  const ids = flows.map((f) => f.base.id!);
  const runs: Sent[][] = [];
  for (let r = 0; r < 3; r++) {
    const per: Uint8Array[][] = flows.map((f, i) => {
      const n = f.mss > 1448 ? 8 : 32;
      const short = r === 1 ? 700 : undefined;
      const s = stream({ ...f.base, seq: seqs[i], id: ids[i] }, n, f.mss, short, short !== undefined ? 0x18 : undefined);
      for (const p of s) {
        const ip = p[0] >> 4 === 6 ? 40 : 20;
        seqs[i] = (seqs[i] + p.length - ip - 20) >>> 0;
      }
      ids[i] = (ids[i] + n) & 0xffff;
      if (r === 2 && i === 1) s[10] = corrupt(s[10]);
      if (r === 2 && i === 2) [s[5], s[6]] = [s[6], s[5]];
      return s;
    });
    const run: Sent[] = [];
    for (let k = 0; k < 32; k += 4) {
      for (let i = 0; i < per.length; i++) {
        for (const p of per[i].slice(k, k + 4)) run.push({ inner: p, datagram: geneve(p, 0xc00 + i), flow: i });
      }
    }
    runs.push(run);
  }
  return runs;
}

function corrupt(p: Uint8Array): Uint8Array {
  const c = p.slice();
  c[c.length - 1] ^= 0x5a;
  return c;
}

/** The inner packet GWLB should get back: the TTL/hop limit one lower and the IPv4 header
 * checksum updated. */
function forwarded(p: Uint8Array): Uint8Array {
  const c = p.slice();
  if (c[0] >> 4 === 6) {
    c[7] -= 1;
    return c;
  }
  c[8] -= 1;
  c[10] = 0;
  c[11] = 0;
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (c[i] << 8) | c[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  s = ~s & 0xffff;
  c[10] = s >> 8;
  c[11] = s & 0xff;
  return c;
}

/** Sends the runs from the GWLB namespace (from GWLB's address, port 6081, each run in one burst,
 * 30 ms apart) and collects what comes back to port 6081 until `expect` datagrams or 30 s. */
async function exchange(env: Env, runs: Sent[][], expect: number): Promise<Uint8Array[]> {
  const inFile = path.join(env.dir, 'runs.json');
  const outFile = path.join(env.dir, 'back.txt');
  fs.writeFileSync(inFile, JSON.stringify(runs.map((r) => r.map((s) => Buffer.from(s.datagram).toString('hex')))));
  const script = `
    const fs = require('node:fs');
    const runs = JSON.parse(fs.readFileSync(${JSON.stringify(inFile)}, 'utf8')).map((r) => r.map((h) => Buffer.from(h, 'hex')));
    const s = require('node:dgram').createSocket('udp4');
    const got = [];
    const done = () => { fs.writeFileSync(${JSON.stringify(outFile)}, got.join('\\n')); process.exit(0); };
    s.on('message', (m) => { got.push(m.toString('hex')); if (got.length >= ${expect}) done(); });
    setTimeout(done, 30000);
    s.bind(6081, ${JSON.stringify(env.t.gwlbIp)}, async () => {
      s.setRecvBufferSize(8 << 20);
      s.setSendBufferSize(8 << 20);
      for (const run of runs) {
        await Promise.all(run.map((b) => new Promise((ok) => s.send(b, 6081, ${JSON.stringify(env.t.applianceIp)}, ok))));
        await new Promise((ok) => setTimeout(ok, 30));
      }
    });`;
  const a = nsSpawnArgs(env.t.gwlbNs, process.execPath, ['-e', script]);
  const proc = spawn(a.file, a.args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((ok) => proc.on('exit', (c) => ok(c)));
  assert.equal(code, 0, 'the GWLB-side sender/receiver');
  const text = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
  return text === '' ? [] : text.split('\n').map((h) => new Uint8Array(Buffer.from(h, 'hex')));
}

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
      const expect = new Map<string, number[]>(); // inner hex (as returned) -> indices sent
      all.forEach((s, i) => {
        const k = Buffer.from(forwarded(s.inner)).toString('hex');
        expect.set(k, [...(expect.get(k) ?? []), i]);
      });
      const lastOfFlow = new Map<number, number>();
      let matched = 0;
      for (const b of back) {
        // Outer IPv4/UDP was removed by the socket; the Geneve header is the flow's, as sent.
        const s0 = all[0];
        const glen = s0.datagram.length - s0.inner.length;
        const k = Buffer.from(b.subarray(glen)).toString('hex');
        const idx = expect.get(k)?.shift();
        assert.ok(idx !== undefined, `a returned packet that was never sent (or twice): ${k.slice(0, 120)}...`);
        assert.deepEqual(b.subarray(0, glen), all[idx].datagram.subarray(0, glen), 'its flow\'s Geneve header');
        const f = all[idx].flow;
        assert.ok((lastOfFlow.get(f) ?? -1) < idx || f === 2, `flow ${f} in order`);
        lastOfFlow.set(f, idx);
        matched++;
      }
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
