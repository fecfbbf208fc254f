// Per-endpoint network namespaces (src/control/netns.ts) against the real daemon:
// - `netns=` in the endpoints file: gwi-/gwo- are moved into the namespace (created when missing),
//   the TUN queues keep carrying traffic after the move, and the hooks run inside it;
// - two endpoints whose customers send byte-identical inner 5-tuples (the emulator's
//   --same-inner), each through the plain stateful firewall of examples/hooks/netns-firewall.sh in
//   its own namespace: every packet comes back on its own endpoint (a packet crossing over would
//   come back with the other endpoint's Geneve header: a verification failure), each namespace's
//   conntrack holds its endpoint's flows and its firewall saw exactly its endpoint's packets;
// - NAT and conntrack in each namespace: identical UDP requests on both endpoints leave through
//   each namespace's own egress link masqueraded, the server answers both, and each answer is
//   de-NATed in its namespace and comes back on its own endpoint's flow;
// - --netns-per-endpoint puts an unlisted endpoint in `gwlbtun-<base-60 ID>`;
// - at shutdown the namespaces gwlbtun created are removed, one that existed before is left.
// The daemon runs under `ip netns exec` (lib.ts), which gives it a mount namespace of its own
// whose mounts do not propagate back: the namespaces it creates (bind mounts on /run/netns) are
// seen through its mount namespace (nsenter -m), as a service with a private mount namespace
// would have it (docs/operations.md, "Network namespaces per endpoint").

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eniToBase60 } from '../../src/wire/eni';
import { links, metrics, nsRun, ROOT, runEmulator, sh, startDaemon, stopDaemon, useEnv, type LinkInfo } from './lib';
import { ECHO_JS, parseInner, probeSend, PROBE_JS, randomU64, startJsonChild, TCP, tcpPacket, type JsonChild, type ProbePacket, type ProbeRx } from './fixtures/hooks-lib';
import { buildInnerPacket } from '../../src/testkit/build';

const PORT = 8094;
const HOOK = path.join(ROOT, 'examples', 'hooks', 'netns-firewall.sh');
const A = '00000000000000a1a';
const B = '00000000000000b1b';
// Unlisted, in gwlbtun-<base 60>: random, so that the namespace name is unique per run.
const C = (BigInt('0x' + randomBytes(7).toString('hex')) | 1n).toString(16).padStart(17, '0');
const n60 = (hex: string): string => eniToBase60(BigInt('0x' + hex));
const nsExists = (ns: string): boolean => fs.existsSync(`/run/netns/${ns}`);

describe('endpoints in network namespaces of their own', () => {
  const env = useEnv('epn');
  const made: string[] = [];
  let nsA = '';
  let nsB = '';
  const nsC = `gwlbtun-${n60(C)}`;
  after(() => {
    // Whatever a failed test left (useEnv's after() has stopped the daemon by now).
    for (const ns of [...made, nsC]) if (nsExists(ns)) sh('ip', ['netns', 'del', ns]);
  });

  /** A command in namespace `ns` as the daemon sees it (through its mount namespace). */
  const inNs = (ns: string, cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } =>
    sh('nsenter', ['-t', String(env.d.pid), '-m', 'ip', 'netns', 'exec', ns, cmd, ...args]);
  const nsLinks = (ns: string): LinkInfo[] => {
    const r = inNs(ns, 'ip', ['-j', 'link', 'show']);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as LinkInfo[]).filter((l) => l.ifname.startsWith('gw'));
  };
  const counters = (ns: string): { newP: number; estP: number; invalid: number } => {
    const out = inNs(ns, 'nft', ['list', 'chain', 'inet', 'gwlbtun_fw', 'forward']).stdout;
    const get = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
    return { newP: get(/ct state new counter packets (\d+)/), estP: get(/ct state established,related counter packets (\d+)/), invalid: get(/ct state invalid counter packets (\d+)/) };
  };
  const ctCount = (ns: string): number => Number(inNs(ns, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_count']).stdout.trim());

  test('listed endpoints are moved into their namespaces, set up, with the hook run there', async () => {
    nsA = `${env.t.id}-a`;
    nsB = `${env.t.id}-b`;
    made.push(nsA, nsB);
    assert.equal(sh('ip', ['netns', 'add', nsB]).status, 0); // B's exists before: gwlbtun must leave it
    const file = path.join(env.dir, 'endpoints.conf');
    fs.writeFileSync(file, `${A} alpha netns=${nsA}\n${B} bravo netns=${nsB}\n`);
    const d = await startDaemon(env.t, ['--endpoints', file, '--netns-per-endpoint', '-c', HOOK, '-r', HOOK, '-p', String(PORT), '--logging', 'core=info']);
    env.d = d;
    for (const [ns, hex] of [[nsA, A], [nsB, B]] as const) {
      const names = nsLinks(ns);
      assert.deepEqual(names.map((l) => l.ifname).sort(), [`gwi-${n60(hex)}`, `gwo-${n60(hex)}`], ns);
      for (const l of names) {
        assert.ok(l.flags.includes('UP'), `${l.ifname} up in ${ns}`);
        assert.equal(l.mtu, 8500);
      }
      assert.equal(inNs(ns, 'cat', [`/proc/sys/net/ipv4/conf/gwi-${n60(hex)}/rp_filter`]).stdout.trim(), '0');
      assert.equal(inNs(ns, 'cat', ['/proc/sys/net/ipv4/ip_forward']).stdout.trim(), '1');
      assert.equal(counters(ns).newP, 0, 'the hook made the firewall in the namespace');
    }
    assert.ok(!links(env.t.applianceNs).some((l) => l.ifname.startsWith('gwi-')), 'nothing left in the daemon namespace');
    assert.match(d.output(), new RegExp(`endpoint ${A} \\(alpha\\): created gwi-${n60(A)} and gwo-${n60(A)} in network namespace ${nsA} \\(created\\)`));
    assert.match(d.output(), new RegExp(`in network namespace ${nsB}\\n`), 'B: existing namespace, not created');
  });

  test('identical inner 5-tuples on two endpoints: each through its own stateful firewall, none mixed', async () => {
    const r = await runEmulator(env.t, ['--endpoints', `${A},${B}`, '--same-inner', '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2', '--rate', '400', '--packets', '25']);
    for (const ep of r.endpoints) assert.equal(ep.verified, ep.sent, `${ep.eni}: ${ep.verified}/${ep.sent}, bad ${JSON.stringify(ep.bad)}`);
    for (const [ns, hex] of [[nsA, A], [nsB, B]] as const) {
      const sent = r.endpoints.find((e) => e.eni === hex)!.sent;
      const c = counters(ns);
      assert.equal(c.newP + c.estP, sent, `${ns}: its firewall accepted exactly its endpoint's ${sent} packets (${JSON.stringify(c)})`);
      // 2 flows x (IPv4, IPv6) x (UDP, TCP) with the same tuples in both: each namespace's own table has all 8.
      assert.ok(ctCount(ns) >= 8, `${ns}: conntrack entries ${ctCount(ns)}`);
    }
  });

  test('NAT and conntrack per namespace: identical requests masqueraded apart and answered back on their own endpoints; identical TCP tuples judged apart', async () => {
    // A server namespace, linked to each endpoint namespace by a veth pair (the appliance's second
    // arm there); each namespace masquerades what leaves by it. Server 198.51.100.7 on its lo.
    const nsS = `${env.t.id}-s`;
    made.push(nsS);
    const ok = (r: { status: number | null; stderr: string }, what: string): void => assert.equal(r.status, 0, `${what}: ${r.stderr}`);
    ok(sh('ip', ['netns', 'add', nsS]), 'server namespace');
    const daemonIp = (args: string[]): { status: number | null; stdout: string; stderr: string } => sh('nsenter', ['-t', String(env.d.pid), '-m', 'ip', ...args]);
    ok(daemonIp(['-n', nsS, 'link', 'set', 'lo', 'up']), 'lo');
    ok(daemonIp(['-n', nsS, 'addr', 'add', '198.51.100.7/32', 'dev', 'lo']), 'server address');
    const arms = [
      { ns: nsA, hex: A, mine: '203.0.113.1', peer: '203.0.113.2', tmp: `${env.t.id}x` },
      { ns: nsB, hex: B, mine: '203.0.113.5', peer: '203.0.113.6', tmp: `${env.t.id}y` },
    ];
    for (const a of arms) {
      const gwi = `gwi-${n60(a.hex)}`;
      ok(daemonIp(['link', 'add', a.tmp, 'netns', a.ns, 'type', 'veth', 'peer', 'name', `${a.tmp}s`, 'netns', nsS]), 'veth');
      ok(daemonIp(['-n', a.ns, 'link', 'set', a.tmp, 'name', 'eg', 'up']), 'egress up');
      ok(daemonIp(['-n', a.ns, 'addr', 'add', `${a.mine}/30`, 'dev', 'eg']), 'egress address');
      ok(daemonIp(['-n', nsS, 'link', 'set', `${a.tmp}s`, 'up']), 'server side up');
      ok(daemonIp(['-n', nsS, 'addr', 'add', `${a.peer}/30`, 'dev', `${a.tmp}s`]), 'server side address');
      // The echo server's unconnected socket answers from the source its route prefers: the
      // server address, so that the answer matches the connection the namespace NATed.
      ok(daemonIp(['-n', nsS, 'route', 'replace', `${a.peer.replace(/\d+$/, (d) => String(Number(d) - 2))}/30`, 'dev', `${a.tmp}s`, 'src', '198.51.100.7']), 'server source');
      ok(daemonIp(['-n', a.ns, 'route', 'add', '198.51.100.7/32', 'via', a.peer]), 'route to the server');
      // The appliance's policy, in this namespace alone: new connections may leave by the egress
      // link (the example hook allows gwi- to gwo- only), masqueraded.
      ok(inNs(a.ns, 'nft', ['add', 'rule', 'inet', 'gwlbtun_fw', 'forward', 'iifname', gwi, 'oifname', 'eg', 'ct', 'state', 'new', 'accept']), 'egress rule');
      ok(inNs(a.ns, 'nft', ['add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname "eg" masquerade']), 'masquerade');
    }
    let server: JsonChild | undefined;
    let probe: JsonChild | undefined;
    try {
      server = startJsonChild(nsS, ECHO_JS, ['7', '30']);
      await server.waitLine('echo server ready', (l) => l.type === 'ready');
      probe = startJsonChild(env.t.gwlbNs, PROBE_JS, [env.t.gwlbIp, env.t.applianceIp, '30']);
      await probe.waitLine('probe ready', (l) => l.type === 'ready');
      // Byte-identical requests (addresses, ports, payload) on both endpoints.
      const req = buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.10', dst: '198.51.100.7', srcPort: 40000, dstPort: 7, payload: Buffer.from('same request') });
      let port = 32000;
      const sent: ProbePacket[] = arms.map((a) => ({ eni: BigInt('0x' + a.hex), attachment: randomU64(), cookie: (Math.random() * 2 ** 32) >>> 0, port: port++, inner: req }));
      probeSend(probe, sent);
      for (const s of sent) {
        const rx = (await probe.waitLine(`answer on ${s.eni.toString(16)}`, (l) => l.type === 'rx' && l.srcPort === s.port, 5000).catch((e: Error) => {
          const state = arms.map((a) => inNs(a.ns, 'nft', ['list', 'ruleset']).stdout).join('\n');
          throw new Error(`${e.message}\nserver: ${JSON.stringify(server!.lines)}\n${state}\n${env.d.output()}`);
        })) as unknown as ProbeRx;
        assert.equal(rx.eni, s.eni.toString(16), 'on the endpoint that asked');
        assert.equal(rx.cookie, s.cookie, "with that flow's cookie");
        const p = parseInner(rx.innerHex);
        assert.deepEqual([p.src, p.dst, p.sport, p.dport], ['198.51.100.7', '192.0.2.10', 7, 40000], 'de-NATed: addressed to the customer again');
        assert.equal(p.payload.toString(), 'same request');
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(probe.lines.filter((l) => l.type === 'rx').length, 2, 'one answer per request, none crossed over');
      // The server saw each request from its namespace's own egress address.
      const seen = server.lines.filter((l) => l.type === 'udp').map((l) => String(l.from)).sort();
      assert.deepEqual(seen, ['203.0.113.1', '203.0.113.5']);
      for (const a of arms) assert.ok(counters(a.ns).estP >= 1, `${a.ns}: the answer passed as an established connection`);
      // Conntrack per namespace: A opens a connection (SYN) while B is mid-way through its own with
      // the very same 5-tuple (ACK with data). In one shared conntrack table B's segment would be an
      // ACK in state SYN_SENT from the opening side, invalid, and dropped ('ct state invalid drop');
      // here each namespace judges its own.
      const base = { src: '192.0.2.20', dst: '198.51.100.80', sport: 41000, dport: 443 };
      const syn: ProbePacket = { ...sent[0], port: port++, inner: tcpPacket({ ...base, flags: TCP.SYN, seq: 5000, ack: 0 }) };
      probeSend(probe, [syn]);
      const rs = parseInner(((await probe.waitLine('SYN of A forwarded', (l) => l.type === 'rx' && l.srcPort === syn.port, 5000)) as unknown as ProbeRx).innerHex);
      assert.equal(rs.tcpFlags, TCP.SYN);
      const data: ProbePacket = { ...sent[1], port: port++, inner: tcpPacket({ ...base, flags: TCP.ACK | TCP.PSH, seq: 7000, ack: 9000, payload: Buffer.from('B') }) };
      probeSend(probe, [data]);
      const rd = (await probe.waitLine('data of B forwarded', (l) => l.type === 'rx' && l.srcPort === data.port, 5000)) as unknown as ProbeRx;
      assert.equal(rd.eni, B.replace(/^0+/, ''));
      assert.equal(parseInner(rd.innerHex).payload.toString(), 'B');
      for (const a of arms) assert.equal(counters(a.ns).invalid, 0, `${a.ns}: nothing invalid`);
    } finally {
      await probe?.stop();
      await server?.stop();
    }
  });

  test('--netns-per-endpoint: an unlisted endpoint gets gwlbtun-<base-60 ID>, created on its first packet', async () => {
    const r = await runEmulator(env.t, ['--endpoints', C, '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '200', '--packets', '10', '--settle-ms', '3000']);
    assert.equal(metrics(env.t, PORT).get('gwlbtun_drops_total{reason="hold_timeout"}'), 0, 'created (namespace, move, hook) within the hold time');
    assert.equal(r.totals.verified, r.totals.sent);
    assert.ok(nsExists(nsC));
    assert.deepEqual(nsLinks(nsC).map((l) => l.ifname).sort(), [`gwi-${n60(C)}`, `gwo-${n60(C)}`]);
  });

  test('shutdown: DESTROY in each namespace; namespaces gwlbtun created are removed, an existing one stays', async () => {
    const rc = await stopDaemon(env.d);
    assert.equal(rc.code, 0, env.d.output());
    assert.match(env.d.output(), /netns-firewall: removed for vpce-00000000000000b1b/);
    assert.ok(!nsExists(nsA) && !nsExists(nsC), 'created ones removed');
    assert.ok(nsExists(nsB), 'the one that existed stays');
    assert.deepEqual(links(nsB).filter((l) => l.ifname.startsWith('gw')), [], 'its interfaces are gone');
    assert.doesNotMatch(nsRun(nsB, 'nft', ['list', 'tables']).stdout, /gwlbtun_fw/, 'DESTROY ran inside it');
  });
});
