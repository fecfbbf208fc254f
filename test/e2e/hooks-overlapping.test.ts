// examples/hooks/overlapping-cidrs.sh end to end, once per firewall front end (nft, iptables):
// two GWLB endpoints whose customers use IDENTICAL inner 5-tuples.
//  - The emulator (--same-inner) sends the same inner packets on both endpoints; every packet must
//    come back verified on its own endpoint (a packet of A leaving through gwo-B would come back
//    with B's Geneve header and A's payload: a verification failure).
//  - conntrack holds each tuple twice, once per endpoint zone, each with its endpoint's mark.
//  - The appliance itself answers a connection (a REJECT rule's TCP reset, IPv4 and IPv6) for
//    identical SYNs on both endpoints: each reset must go back through the endpoint whose SYN it
//    answers (its Geneve header, cookie included), although the addresses say nothing about it.
//  - DESTROY (at daemon shutdown) removes every rule, table and route the hook made.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, destroyTopology, type Topology } from '../../src/sim/topology';
import { FlowPlan } from '../../src/sim/flows';
import { endpointNames } from '../../src/wire/eni';
import { nsRun, requireRoot, runEmulator, sleep, startDaemon, stopDaemon, tmpDir, type Daemon } from './lib';
import { countedNonZero, kernelDrops } from './probe';

const HEALTH_PORT = 8086;
import {
  assertAllVerified,
  createEndpointsFirst,
  expand6,
  firewallBackends,
  netfilterState,
  nsOk,
  onlyDefaultRules,
  OVERLAPPING_HOOK,
  parseInner,
  probeSend,
  PROBE_JS,
  randomU64,
  ruleSnapshot,
  startJsonChild,
  TCP,
  tcpPacket,
  type JsonChild,
  type ProbePacket,
  type ProbeRx,
} from './fixtures/hooks-lib';

// The low 16 bits of both ENI IDs are equal, so both endpoints want the same number: the second
// must get the next free one (and the lock makes the two concurrent CREATE hooks take turns).
const ENI_A = 0x1111111111110005n;
const ENI_B = 0x2222222222220005n;
const BASE = 100000;

let nextPort = 30000;
/** A packet on a new GWLB flow of endpoint eni (fresh attachment, cookie and GWLB port). */
function flow(eni: bigint, inner: Uint8Array): ProbePacket {
  return { eni, attachment: randomU64(), cookie: (Math.random() * 2 ** 32) >>> 0, port: nextPort++, inner };
}

/** The datagram that came back on flow s (by its GWLB port), checked to carry s's exact identity. */
async function rxOn(probe: JsonChild, s: ProbePacket, what: string, timeoutMs = 5000): Promise<ProbeRx> {
  const rx = (await probe.waitLine(what, (l) => l.type === 'rx' && l.srcPort === s.port, timeoutMs)) as unknown as ProbeRx;
  assert.equal(rx.eni, s.eni.toString(16), `${what}: came back on the endpoint that sent it`);
  assert.equal(rx.attachment, s.attachment.toString(16), `${what}: attachment ID`);
  assert.equal(rx.cookie, s.cookie, `${what}: the flow's cookie`);
  return rx;
}

describe('--same-inner gives every endpoint the same inner 5-tuples', () => {
  test('flow plan', () => {
    const p = new FlowPlan({ gwlbIp: '198.18.0.1', applianceIp: '198.18.0.2', endpoints: [ENI_A, ENI_B], flowsPerKind: 2, families: [4, 6], protos: ['tcp', 'udp', 'icmp'], innerSize: 200, ttlDecrement: 1, sameInner: true });
    const half = p.count / 2;
    for (let f = 0; f < half; f++) {
      const a = p.outboundPacket(f, 0);
      const b = p.outboundPacket(f + half, 0);
      assert.equal(p.src[f], p.src[f + half]);
      assert.equal(p.dst[f], p.dst[f + half]);
      assert.notEqual(p.port[f], p.port[f + half], 'GWLB ports stay distinct');
      // After the outer headers (28) and Geneve (40): the IP header and the transport fields
      // that make the flow (ports, TCP sequence number, ICMP id) are byte-identical.
      const ip = p.family[f] === 4 ? 20 : 40;
      const innerA = a.subarray(68);
      const innerB = b.subarray(68);
      const l4 = p.proto[f] === 6 ? [0, 8] : p.proto[f] === 17 ? [0, 4] : [4, 6];
      assert.deepEqual(innerA.subarray(0, ip), innerB.subarray(0, ip), `IP header of flow ${f}`);
      assert.deepEqual(innerA.subarray(ip + l4[0], ip + l4[1]), innerB.subarray(ip + l4[0], ip + l4[1]), `transport of flow ${f}`);
    }
  });
});

const backends = firewallBackends();

test('both firewall front ends are installed (npm test installs them: scripts/test-prereqs.js)', () => {
  requireRoot();
  assert.deepEqual(backends.slice().sort(), ['iptables', 'nft'], 'nft and iptables are needed to test both variants of the hook');
});

for (const fw of backends) {
  describe(`overlapping-cidrs hook (${fw})`, () => {
    let t: Topology | undefined;
    let d: Daemon | undefined;
    let probe: JsonChild | undefined;
    let dir = '';
    const zone = new Map<bigint, number>();

    before(async () => {
      requireRoot();
      dir = tmpDir('ovl');
      t = createTopology('hov');
      d = await startDaemon(t, ['-c', OVERLAPPING_HOOK, '-r', OVERLAPPING_HOOK, '--logging', 'core=info', '-p', String(HEALTH_PORT)], { GWLBTUN_FIREWALL: fw, RUNTIME_DIRECTORY: dir });
    });

    after(async () => {
      try {
        if (probe !== undefined) await probe.stop();
        if (d !== undefined) {
          const r = await stopDaemon(d);
          if (r.code !== 0) console.error(`daemon exit ${r.code} ${r.signal}\n${d.output()}`);
        }
      } finally {
        if (t !== undefined) destroyTopology(t);
        if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test('identical inner traffic on two endpoints: every packet verified on its own endpoint', async () => {
      const args = [
        '--endpoints', `${ENI_A.toString(16)},${ENI_B.toString(16)}`,
        '--same-inner',
        '--families', '4,6',
        '--protos', 'tcp,udp,icmp',
        '--flows', '3',
        '--packets', '20',
        '--rate', '3000',
        '--size', '300',
        '--ttl-decrement', '1',
        '--settle-ms', '1500',
      ];
      await createEndpointsFirst(t!, HEALTH_PORT, args, 2);
      const r = await runEmulator(t!, args);
      assert.equal(r.endpoints.length, 2);
      if (r.totals.verified !== r.totals.sent) {
        // Should a packet go missing, say where it went.
        console.error(`overlapping (${fw}): ${r.totals.sent - r.totals.verified} lost; the daemon counted:\n${await countedNonZero(t!.applianceNs, HEALTH_PORT)}\n` +
          `kernel, appliance side:\n${await kernelDrops(t!.applianceNs)}\nkernel, GWLB side:\n${await kernelDrops(t!.gwlbNs)}\nemulator: ${JSON.stringify(r.totals)}`);
      }
      assertAllVerified(r, fw);
      for (const eni of [ENI_A, ENI_B]) {
        const nm = endpointNames(eni);
        const m = new RegExp(`overlapping-cidrs: ${nm.gwi} -> ${nm.gwo} for vpce-${nm.hex}: zone (\\d+), mark/table (\\d+) \\(${fw}\\)`).exec(d!.output());
        assert.ok(m, `CREATE logged for ${nm.gwi}:\n${d!.output()}`);
        assert.equal(Number(m[2]), BASE + Number(m[1]));
        zone.set(eni, Number(m[1]));
      }
      assert.notEqual(zone.get(ENI_A), zone.get(ENI_B), 'distinct numbers despite equal low ENI bits');
      assert.deepEqual([...zone.values()].sort(), [6, 7], 'both start at 0x0005 % 65000 + 1 = 6; the second takes 7');
    });

    test('conntrack keeps each identical tuple twice: one connection per endpoint zone, with its mark', () => {
      const ct = nsOk(t!.applianceNs, 'cat', ['/proc/net/nf_conntrack']);
      // The first IPv4 UDP flow of each endpoint (same plan as the emulator's: see flows.ts).
      const lines = ct.split('\n').filter((l) => /\budp\b/.test(l) && l.includes('src=192.0.2.4 ') && l.includes('sport=20003 dport=53 '));
      assert.equal(lines.length, 2, `two entries for one tuple:\n${lines.join('\n')}\n---\n${ct.slice(0, 3000)}`);
      const seen = lines.map((l) => [Number(/ zone=(\d+)/.exec(l)?.[1]), Number(/ mark=(\d+)/.exec(l)?.[1])]).sort();
      assert.deepEqual(seen, [...zone.values()].sort().map((z) => [z, BASE + z]));
    });

    test('CREATE run again on a live endpoint keeps its number and leaves one copy of everything', () => {
      const ns = t!.applianceNs;
      const before = ruleSnapshot(ns);
      const nm = endpointNames(ENI_A);
      const r = nsRun(ns, 'env', [`GWLBTUN_FIREWALL=${fw}`, `RUNTIME_DIRECTORY=${dir}`, OVERLAPPING_HOOK, 'CREATE', nm.gwi, nm.gwo, nm.hex]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`zone ${zone.get(ENI_A)}, mark/table ${BASE + zone.get(ENI_A)!} `));
      assert.equal(ruleSnapshot(ns), before);
    });

    test("the appliance's own TCP resets go back through the endpoint of the connection they answer", async () => {
      const ns = t!.applianceNs;
      // The appliance's policy (not the hook's): refuse TCP port 23 with a reset, and drop what
      // conntrack finds invalid, as stateful firewalls do.
      if (fw === 'nft') {
        nsOk(ns, 'nft', ['add table inet test_policy']);
        nsOk(ns, 'nft', ['add chain inet test_policy policy_fwd { type filter hook forward priority filter; policy accept; }']);
        nsOk(ns, 'nft', ['add rule inet test_policy policy_fwd ct state invalid drop']);
        nsOk(ns, 'nft', ['add rule inet test_policy policy_fwd tcp dport 23 reject with tcp reset']);
      } else {
        for (const cmd of ['iptables', 'ip6tables']) {
          nsOk(ns, cmd, ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
          nsOk(ns, cmd, ['-A', 'FORWARD', '-p', 'tcp', '--dport', '23', '-j', 'REJECT', '--reject-with', 'tcp-reset']);
        }
      }
      probe = startJsonChild(t!.gwlbNs, PROBE_JS, [t!.gwlbIp, t!.applianceIp, '30']);
      await probe.waitLine('probe ready', (l) => l.type === 'ready');
      const cases = [
        { src: '192.0.2.10', dst: '198.51.100.23' },
        { src: '2001:db8:1::10', dst: '2001:db8:ffff::23' },
      ];
      for (const c of cases) {
        // Byte-identical SYNs on both endpoints: same addresses, ports and sequence number.
        const syn = tcpPacket({ src: c.src, dst: c.dst, sport: 40000, dport: 23, flags: TCP.SYN, seq: 1000, ack: 0 });
        const sent = [ENI_A, ENI_B].map((eni) => flow(eni, syn));
        probeSend(probe, sent);
        for (const s of sent) {
          const rx = await rxOn(probe, s, `reset for ${s.eni.toString(16)} (${c.src})`);
          const p = parseInner(rx.innerHex);
          const want = c.src.includes(':') ? [expand6(c.dst), expand6(c.src)] : [c.dst, c.src];
          assert.deepEqual([p.src, p.dst, p.sport, p.dport], [...want, 23, 40000], 'the reset answers the SYN');
          assert.ok((p.tcpFlags & TCP.RST) !== 0, `RST flag set (flags 0x${p.tcpFlags.toString(16)})`);
          assert.equal(p.tcpAck, 1001, 'acknowledges the SYN');
        }
      }
      // Exactly one reset per SYN: none went to the other endpoint as well.
      await sleep(300);
      assert.equal(probe.lines.filter((l) => l.type === 'rx').length, 4, JSON.stringify(probe.lines));
    });

    test('a stateful firewall judges identical connections of two endpoints separately (and would not without the zones)', async () => {
      // A opens a connection (SYN); B is mid-way through its own connection with the very same
      // 5-tuple (ACK with data). In one shared conntrack entry, B's ACK would be an ACK in state
      // SYN_SENT from the opening side: invalid, and dropped by 'ct state invalid drop'.
      const exchange = async (sport: number): Promise<boolean> => {
        const base = { src: '192.0.2.20', dst: '198.51.100.80', sport, dport: 443 };
        const a = flow(ENI_A, tcpPacket({ ...base, flags: TCP.SYN, seq: 5000, ack: 0 }));
        probeSend(probe!, [a]);
        const ra = parseInner((await rxOn(probe!, a, 'SYN of A forwarded')).innerHex);
        assert.equal(ra.tcpFlags, TCP.SYN);
        assert.equal(ra.ttl, 63, 'forwarded once by the kernel');
        const b = flow(ENI_B, tcpPacket({ ...base, flags: TCP.ACK | TCP.PSH, seq: 7000, ack: 9000, payload: Buffer.from('B') }));
        probeSend(probe!, [b]);
        try {
          const rb = parseInner((await rxOn(probe!, b, 'data of B forwarded', 1000)).innerHex);
          assert.equal(rb.payload.toString(), 'B');
          return true;
        } catch (e) {
          if (/timed out/.test((e as Error).message)) return false;
          throw e;
        }
      };
      assert.equal(await exchange(41000), true, "with the hook's zones, B's packet is valid in B's own connection");
      // Control: take the zones away (the rest of the hook stays) and repeat with a fresh tuple.
      const ns = t!.applianceNs;
      if (fw === 'nft') {
        for (const eni of [ENI_A, ENI_B]) nsOk(ns, 'nft', ['flush', 'chain', 'inet', `gwlbtun_${endpointNames(eni).hex}`, 'ep_zone']);
      } else {
        for (const cmd of ['iptables', 'ip6tables']) nsOk(ns, cmd, ['-t', 'raw', '-F', 'PREROUTING']);
      }
      assert.equal(await exchange(41001), false, "without zones, B's packet lands in A's connection and is dropped as invalid");
      await probe!.stop();
      probe = undefined;
    });

    test('DESTROY at shutdown removes every rule, table and route of the hook', async () => {
      const ns = t!.applianceNs;
      const r = await stopDaemon(d!);
      d = undefined;
      assert.equal(r.code, 0);
      const s = netfilterState(ns);
      assert.ok(onlyDefaultRules(s.rules), `IPv4 rules left:\n${s.rules}`);
      assert.ok(onlyDefaultRules(s.rules6), `IPv6 rules left:\n${s.rules6}`);
      assert.ok(!s.nft.includes('gwlbtun'), `nftables left:\n${s.nft}`);
      assert.ok(!s.ipt.includes('gwlbtun'), `iptables left:\n${s.ipt}`);
      for (const z of zone.values()) {
        for (const fam of ['-4', '-6']) {
          const routes = nsRun(ns, 'ip', [fam, 'route', 'show', 'table', String(BASE + z)]);
          assert.equal(routes.stdout.trim(), '', `table ${BASE + z} (${fam}) is empty`);
        }
      }
      assert.ok(fs.existsSync(path.join(dir, 'hooks.lock')), 'the hooks took their lock in RUNTIME_DIRECTORY');
    });
  });
}
