// Super-packets of more than 64 segments (issue 19, item 1; docs/architecture.md "TUN offloads"):
// real TCP with a small MSS terminated in the appliance namespace (where a transparent proxy
// sits), through the lab (src/lab, docs/lab.md) with --offload on, in every send tier. The
// appliance's own TCP stack hands gwo- TSO super-packets of up to 64 KiB, which at MSS 536 are
// about 120 segments, more than a return batch (64) holds: the return path cuts them in chunks of
// at most 64 (raw and USO tiers) or hands them whole to the kernel (UDP tunnel GSO TAP). Every
// byte the client gets is compared with what the server sent (the lab client's bulk operation),
// and nothing may be dropped as gso_no_room. MSS 1220 (IPv6's minimum MTU) is carried too; its
// super-packets stay under 64 segments.
//
// The server: the lab's own (src/lab/server.ts) started in the appliance namespace on addresses
// of its loopback interface; the client reaches them through GWLB (the lab's gwlb namespace routes
// everything into Geneve), gwlbtun writes the client's packets to gwi- and the kernel delivers
// them locally; the replies are routed out of gwo- (a host route per client address) and gwlbtun
// returns them to GWLB. The client's routes to the server addresses advertise the small MSS.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Lab, LAB_PORTS } from '../../src/lab/lab';
import { LAB } from '../../src/lab/topology';
import { requireRoot, ROOT } from './lib';
import { drop, mv } from './probe';

const SERVER_JS = path.join(ROOT, 'dist', 'src', 'lab', 'server.js');
/** The appliance-local server's addresses, one per (family, MSS): the client's route to each
 * advertises that MSS. */
const TARGETS = [
  { fam: 4, mss: 536, addr: '198.51.100.77', via: LAB.gwlbClient4 },
  { fam: 4, mss: 1220, addr: '198.51.100.78', via: LAB.gwlbClient4 },
  { fam: 6, mss: 536, addr: '2001:db8:2::77', via: LAB.gwlbClient6 },
  { fam: 6, mss: 1220, addr: '2001:db8:2::78', via: LAB.gwlbClient6 },
] as const;
/** Bytes per transfer: enough for the server's congestion window to reach 64 KiB TSO packets. */
const BYTES = 6 << 20;
const HTTP_PORT = 8090;
const LONG = 'gwlbtun_tun_superpackets_long_total';

function inNs(ns: string, args: string[]): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `${args.join(' ')} in ${ns}: ${r.stderr ?? String(r.error)}`);
}

// tunnel: the UDP tunnel GSO TAP (kernel 6.17+: the kernel cuts); uso: cut here, UDP GSO writes to
// the USO TUN; raw: cut here, one raw send per segment.
// tunnel-default: the tunnel tier asked for, the lab's veth towards GWLB in its default state (no
// ethtool): gwlbtun sees the veth would pass the kernel's work on unfinished and sends raw (issue
// 19, item 3; src/control/egress.ts) -- every byte right without hand-set flags.
const TIERS = [
  ['tunnel', {}],
  ['uso', { GWLBTUN_NO_UDP_TUNNEL_GSO: '1' }],
  ['raw', { GWLBTUN_NO_UDP_TUNNEL_GSO: '1', GWLBTUN_NO_USO: '1' }],
  ['tunnel-default', {}],
] as const;

for (const [tier, env] of TIERS) {
  describe(`real TCP with MSS 536 and 1220 through --offload on, ${tier === 'tunnel-default' ? 'tunnel tier asked for, the veth towards GWLB in its default state' : `${tier} tier`}`, () => {
    test('super-packets of more than 64 segments come back whole: every byte, no gso_no_room', { timeout: 150_000 }, async () => {
      requireRoot();
      const lab = new Lab({ hook: 'one-arm', daemonArgs: ['--udpthreads', '1', '--offload', 'on', '-p', String(HTTP_PORT)], daemonEnv: env });
      let server: ReturnType<typeof spawn> | undefined;
      try {
        await lab.start();
        const t = lab.topo!;
        // The appliance's veth towards GWLB cuts UDP (tunnel) GSO packets in software, as a NIC
        // without those offloads does (docs/operations.md "Offloads"), so that the tier is used:
        // in its default state gwlbtun would send raw (src/control/egress.ts).
        if (tier !== 'tunnel-default') inNs(t.appliance, ['ethtool', '-K', 'eth0', 'tx', 'off', 'tx-udp-segmentation', 'off', 'tx-gso-list', 'off', 'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off']);
        for (const x of TARGETS) inNs(t.appliance, ['ip', `-${x.fam}`, 'addr', 'add', `${x.addr}/${x.fam === 4 ? 32 : 128}`, 'dev', 'lo']);
        server = spawn('ip', ['netns', 'exec', t.appliance, process.execPath, SERVER_JS, String(LAB_PORTS.http), '8082', '7007'], { stdio: ['pipe', 'pipe', 'inherit'] });
        const srv = server;
        await new Promise<void>((ok, fail) => {
          const timer = setTimeout(() => fail(new Error('the appliance-local server did not start')), 15000);
          srv.stdout!.on('data', (b: Buffer) => {
            if (b.toString().includes('"ready"')) {
              clearTimeout(timer);
              ok();
            }
          });
          srv.on('exit', (c) => fail(new Error(`the appliance-local server exited (${c})`)));
        });
        // The endpoint comes up with its first packets (through to the lab's server).
        const warm = await lab.client([{ op: 'http', host: LAB.server4, port: LAB_PORTS.http, count: 1 }]);
        assert.ok(warm[0]?.ok, `warm-up: ${JSON.stringify(warm)}`);
        const { gwo } = lab.endpoint;
        inNs(t.appliance, ['ip', 'route', 'add', `${LAB.client4}/32`, 'dev', gwo]);
        inNs(t.appliance, ['ip', '-6', 'route', 'add', `${LAB.client6}/128`, 'dev', gwo]);
        for (const x of TARGETS) inNs(t.client, ['ip', `-${x.fam}`, 'route', 'add', x.addr, 'via', x.via, 'dev', 'eth0', 'advmss', String(x.mss)]);
        for (const x of TARGETS) {
          const before = lab.metrics();
          const [r] = await lab.client([{ op: 'bulk', host: x.addr, port: LAB_PORTS.http, bytes: BYTES }], 60000);
          const m = lab.metrics();
          const what = `IPv${x.fam} MSS ${x.mss}`;
          const drops = [...m].filter(([k, v]) => k.startsWith('gwlbtun_drops_total') && v > 0).join(' ');
          assert.ok(r?.ok && r.good === BYTES, `${what}: every byte arrived (${JSON.stringify(r)}; drops: ${drops})`);
          assert.equal(drop(m, 'gso_no_room'), 0, `${what}: nothing dropped for want of room (drops: ${drops})`);
          const long = mv(m, LONG) - mv(before, LONG);
          if (x.mss === 536) assert.ok(long > 0, `${what}: super-packets of more than 64 segments were read back (${long})`);
          console.log(`${tier} ${what}: ${r.good} bytes in ${r.ms} ms, ${long} super-packets of more than 64 segments`);
        }
        const m = lab.metrics();
        if (tier === 'tunnel') assert.ok(mv(m, 'gwlbtun_tun_superpackets_tunneled_total') > 0, 'through the TAP');
        if (tier === 'uso') assert.ok(mv(m, 'gwlbtun_tun_superpackets_uso_total') > 0, 'through the USO device');
        if (tier === 'raw' || tier === 'tunnel-default') assert.ok(mv(m, 'gwlbtun_tun_segmented_packets_total') > 0, 'cut here and sent raw');
        if (tier === 'tunnel-default') assert.equal(mv(m, 'gwlbtun_send_device_in_use'), 0, 'the veth seen');
        if (tier !== 'tunnel') assert.equal(mv(m, 'gwlbtun_tun_superpackets_tunneled_total'), 0, 'not through the TAP');
        const stats = await lab.gwlbStats();
        assert.equal(stats.headerMismatch + stats.portMismatch + stats.unknownFlow + stats.malformed, 0, `the lab GWLB saw every return right: ${JSON.stringify(stats)}`);
      } finally {
        if (server?.pid !== undefined && server.exitCode === null) server.kill('SIGTERM');
        await lab.stop();
      }
    });
  });
}
